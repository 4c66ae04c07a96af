"""Distribution lists (บัญชีแจกจ่าย): named groups of agencies a letter can be addressed to.

A list is either static (explicit agency codes, e.g. every provincial hall) or a
rule (every agency of a kind, optionally within a province, a ministry, the
first two code digits, or under a parent agency). A letter naming a list is
expanded at acceptance, against the directory in force at that moment:
:func:`expand` is pure and deterministic (sorted codes, active agencies only),
so the expansion recorded with the letter (its member count, SHA-256 and the
directory version, see :mod:`gateway.storage.lists`) can be recomputed and
checked.

e-CMS senders have no element for a list: they name its pseudo-organization
code (:data:`ECMS_LIST_PREFIX` followed by three digits, e.g. ``99001``) as a
``ReceiverParty``; see ``gateway/ecms/CODES.md``.

Lists are kept in PostgreSQL (table ``distribution_lists``, migration 0010) and
may be seeded from a directory file's top-level ``"lists"`` section
(:func:`lists_from_dict`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.directory import KINDS, Directory, read_directory_file
from gateway.core.errors import ConfigError

#: A list's name: what ``RecipientList`` carries (schemas/envelope-v1.xsd, type ListName).
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_CODE = re.compile(r"^(?:[0-9]{5}|[0-9]{10})$")
#: e-CMS pseudo-organization codes for lists: ``99`` and three digits (no ministry has code 99).
ECMS_LIST_PREFIX = "99"
ECMS_CODE = re.compile(r"^99[0-9]{3}$")


@dataclass(frozen=True)
class Rule:
    """Every active agency of ``kind``, narrowed by any of province, ministry and parent."""

    kind: str
    """One of :data:`gateway.core.directory.KINDS`."""
    province: str | None = None
    """Two-digit province code (geothai)."""
    ministry: str | None = None
    """The ministry part of the code: its first two digits."""
    parent: str | None = None
    """Code of the parent agency (direct children only)."""

    def matches(self, kind: str, province: str | None, code: str, parent: str | None) -> bool:
        return (kind == self.kind and (self.province is None or province == self.province)
                and (self.ministry is None or code[:2] == self.ministry)
                and (self.parent is None or parent == self.parent))

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in (("kind", self.kind), ("province", self.province), ("ministry", self.ministry),
                                  ("parent", self.parent)) if v is not None}


@dataclass(frozen=True)
class DistributionList:
    name: str
    """Stable name, as a ``RecipientList`` element carries it (e.g. ``provincial-halls``)."""
    name_th: str
    """Thai name shown to people (e.g. ``ศาลากลางจังหวัดทุกจังหวัด``)."""
    members: tuple[str, ...] | None
    """Static list: the agency codes (exactly one of ``members`` and ``rule`` is set)."""
    rule: Rule | None
    """List by rule."""
    ecms_code: str | None = None
    """Pseudo-organization code e-CMS senders use for this list (``99xxx``)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "name_th": self.name_th}
        if self.members is not None:
            out["members"] = list(self.members)
        if self.rule is not None:
            out["rule"] = self.rule.to_dict()
        if self.ecms_code is not None:
            out["ecms_code"] = self.ecms_code
        return out


def expand(lst: DistributionList, directory: Directory) -> tuple[str, ...]:
    """The list's members now: active agencies of ``directory``, sorted by code (deterministic)."""
    if lst.members is not None:
        found = (directory.get(code) for code in lst.members)
        return tuple(sorted({a.code for a in found if a is not None and a.active}))
    rule = lst.rule
    if rule is None:
        return ()
    return tuple(sorted(a.code for a in directory.all()
                        if a.active and rule.matches(a.kind, a.province, a.code, a.parent)))


def check_against(lists: Iterable[DistributionList], directory: Directory) -> None:
    """:class:`ConfigError` naming the first entry that refers to an agency the directory does not
    have (a static member, or a rule's parent), e.g. ``lists[1].members[3]``: for an import that must
    change nothing when a row is wrong. (An inactive agency is fine: expansion leaves it out.)"""
    for i, lst in enumerate(lists):
        for j, code in enumerate(lst.members or ()):
            if code not in directory:
                raise ConfigError(f"lists[{i}].members[{j}] {code} is not in the directory",
                                  field=f"lists[{i}].members[{j}]")
        if lst.rule is not None and lst.rule.parent is not None and lst.rule.parent not in directory:
            raise ConfigError(f"lists[{i}].rule.parent {lst.rule.parent} is not in the directory",
                              field=f"lists[{i}].rule.parent")


def members_digest(codes: Iterable[str]) -> str:
    """SHA-256 (hex) of the sorted codes, one per line with a final newline: what the frozen
    expansion of a letter records, so anyone holding the list of recipients can check it."""
    return hashlib.sha256("".join(f"{c}\n" for c in sorted(codes)).encode("ascii")).hexdigest()


def _str(raw: Mapping[str, Any], key: str, where: str, *, pattern: re.Pattern[str] | None = None,
         required: bool = False) -> str | None:
    value = raw.get(key)
    if value is None:
        if required:
            raise ConfigError(f"{where}.{key} is required", field=f"{where}.{key}")
        return None
    if not isinstance(value, str) or not value.strip() or (pattern is not None and not pattern.match(value)):
        raise ConfigError(f"{where}.{key} is not valid: {value!r}",
                          field=f"{where}.{key}")
    return value


def rule_from_dict(raw: Any, where: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be an object", field=where)
    unknown = sorted(set(raw) - {"kind", "province", "ministry", "parent"})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not a rule field",
                          field=f"{where}.{unknown[0]}")
    kind = _str(raw, "kind", where, required=True)
    if kind is None or kind not in KINDS:
        raise ConfigError(f"{where}.kind {kind!r} is not one of {', '.join(KINDS)}",
                          field=f"{where}.kind")
    return Rule(kind=kind, province=_str(raw, "province", where, pattern=re.compile(r"^[0-9]{2}$")),
                ministry=_str(raw, "ministry", where, pattern=re.compile(r"^[0-9]{2}$")),
                parent=_str(raw, "parent", where, pattern=_CODE))


def list_from_dict(raw: Any, where: str) -> DistributionList:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be an object", field=where)
    name = _str(raw, "name", where, pattern=NAME, required=True)
    name_th = _str(raw, "name_th", where, required=True)
    assert name is not None and name_th is not None  # required
    members_raw, rule_raw = raw.get("members"), raw.get("rule")
    if (members_raw is None) == (rule_raw is None):
        raise ConfigError(f"{where} needs exactly one of members and rule",
                          field=f"{where}.members")
    members: tuple[str, ...] | None = None
    if members_raw is not None:
        if not isinstance(members_raw, list) or not members_raw:
            raise ConfigError(f"{where}.members must be a non-empty list of agency codes",
                              field=f"{where}.members")
        for i, code in enumerate(members_raw):
            if not isinstance(code, str) or not _CODE.match(code):
                raise ConfigError(f"{where}.members[{i}] is not an agency code: {code!r}",
                                  field=f"{where}.members[{i}]")
        members = tuple(dict.fromkeys(members_raw))
    return DistributionList(name=name, name_th=name_th, members=members,
                            rule=None if rule_raw is None else rule_from_dict(rule_raw, f"{where}.rule"),
                            ecms_code=_str(raw, "ecms_code", where, pattern=ECMS_CODE))


def lists_from_dict(data: Mapping[str, Any]) -> tuple[DistributionList, ...]:
    """The ``"lists"`` section of a directory file (none: ``()``). Errors are :class:`ConfigError`
    (code ``config.invalid``) whose field names the entry, e.g. ``lists[2].rule.kind``."""
    raw = data.get("lists", [])
    if not isinstance(raw, list):
        raise ConfigError("lists must be a list", field="lists")
    out = [list_from_dict(entry, f"lists[{i}]") for i, entry in enumerate(raw)]
    for key in ("name", "ecms_code"):
        seen: set[str] = set()
        for i, lst in enumerate(out):
            value = getattr(lst, key)
            if value is not None and value in seen:
                raise ConfigError(f"lists[{i}].{key} {value} is used twice",
                                  field=f"lists[{i}].{key}")
            if value is not None:
                seen.add(value)
    return tuple(out)


def load_lists(path: str | Path) -> tuple[DistributionList, ...]:
    """The ``"lists"`` section of the directory file at ``path`` (what start-up seeds the database with)."""
    return lists_from_dict(read_directory_file(path))
