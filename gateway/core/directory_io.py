"""The directory's exchange formats: CSV (one agency per row) and an e-CMS ``GetOrganizationList`` answer.

Both read into directory-file entries (the form :func:`gateway.core.directory.agency_from_dict`
checks). Reading stops at nothing: every row is checked and all the errors come back together,
each naming its row number and field (``row 12, province: '5' is not a valid code``), so a clerk
fixes a file in one pass; a caller applies nothing unless there are none.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gateway.core import xml
from gateway.core.directory import ROUTE_TARGET, Agency, agency_from_dict
from gateway.core.errors import ConfigError

#: CSV columns, in order. ``route_target`` is the route's url (push, ecms), path (folder) or hub code (via), or
#: for a pull route its protocol ("ecms": the agency pulls through the e-CMS facade only; see
#: ``gateway/ecms/CODES.md``).
CSV_COLUMNS = ("code", "name_th", "name_en", "kind", "parent", "province", "district", "route_kind",
               "route_target", "contact_name", "contact_email", "contact_phone", "generated", "active")
_TRUE, _FALSE = ("1", "true", "yes", "ใช่"), ("", "0", "false", "no", "ไม่ใช่")
MAX_ERRORS = 100


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {self.message}"


class ImportRefused(ConfigError):
    """Rows that cannot be imported; nothing of the import is applied."""

    def __init__(self, errors: list[RowError]) -> None:
        shown = "; ".join(str(e) for e in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        super().__init__(f"directory import refused, nothing applied: {shown}{more}",
                         field=f"row {errors[0].row}.{errors[0].field}")
        self.errors = errors


def _flag(value: str, row: int, name: str, errors: list[RowError], default: bool) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return default if v == "" else False
    errors.append(RowError(row, name, f"{value!r} is not yes or no"))
    return default


def entry_from_row(row: dict[str, str], number: int, errors: list[RowError]) -> dict[str, Any] | None:
    """One CSV row as a checked directory entry (None and ``errors`` extended if it is wrong)."""
    first = len(errors)
    kind = (row.get("route_kind") or "pull").strip()
    route: dict[str, Any] = {"kind": kind}
    target = (row.get("route_target") or "").strip()
    if target and kind in ROUTE_TARGET:
        route[ROUTE_TARGET[kind]] = target
    elif target and kind == "pull":  # a pull route's target names its protocol: "ecms" (e-CMS facade only)
        route["protocol"] = target
    entry: dict[str, Any] = {"code": (row.get("code") or "").strip(), "route": route}
    for name in ("name_th", "name_en", "kind", "parent", "province", "district"):
        value = (row.get(name) or "").strip()
        if value:
            entry[name] = value
    contact = {k: (row.get(f"contact_{k}") or "").strip() for k in ("name", "email", "phone")}
    if any(contact.values()):
        entry["contact"] = {k: v for k, v in contact.items() if v}
    entry["generated"] = _flag(row.get("generated") or "", number, "generated", errors, False)
    entry["active"] = _flag(row.get("active") or "", number, "active", errors, True)
    try:
        agency = agency_from_dict(entry, f"row {number}")
    except ConfigError as exc:
        field = str(exc.field or "").removeprefix(f"row {number}.") or "code"
        message = str(exc).removeprefix("directory: ")
        errors.append(RowError(number, field, message))
        return None
    return agency.to_dict() if len(errors) == first else None


def read_csv(text: str, *, progress: Callable[[int], None] | None = None) -> dict[str, dict[str, Any]]:
    """A CSV export (header row of :data:`CSV_COLUMNS`, any order, extra columns refused) as entries."""
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if "code" not in header or unknown:
        raise ImportRefused([RowError(1, unknown[0] if unknown else "code",
                                      f"the header must name columns among {', '.join(CSV_COLUMNS)}")])
    errors: list[RowError] = []
    out: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(reader, start=2):
        if None in row:
            errors.append(RowError(number, "row", "more cells than the header has columns"))
            continue
        entry = entry_from_row(row, number, errors)
        if entry is not None:
            if entry["code"] in out:
                errors.append(RowError(number, "code", f"agency {entry['code']} appears twice"))
            out[entry["code"]] = entry
        if progress is not None:
            progress(number - 1)
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise ImportRefused(errors)
    return out


def write_csv(agencies: Iterable[Agency]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for a in agencies:
        target = a.route.settings.get(ROUTE_TARGET.get(a.route.kind, "protocol"), "")
        w.writerow([a.code, a.name_th, a.name_en, a.kind, a.parent or "", a.province or "", a.district or "",
                    a.route.kind, target, a.contact.get("name", ""), a.contact.get("email", ""),
                    a.contact.get("phone", ""), "yes" if a.generated else "no", "yes" if a.active else "no"])
    return buf.getvalue()


def read_organization_list(data: bytes) -> dict[str, dict[str, Any]]:
    """An e-CMS ``GetOrganizationList`` answer (as a peer e-CMS node gives it) as entries: each
    ``OrganizationList`` row an agency reached at its ``ECMS-URL``; a 5-digit code ``MM000`` is a
    ministry, any other ``MMddd`` a department under it."""
    root = xml.parse(data, what="GetOrganizationList answer")
    errors: list[RowError] = []
    out: dict[str, dict[str, Any]] = {}
    for number, el in enumerate(root.iter("{*}OrganizationList", "OrganizationList"), start=1):
        cell = {etree_name(c): (c.text or "").strip() for c in el}
        code = cell.get("OrganizationID", "")
        row = {"code": code, "name_th": cell.get("Th-Name", ""), "name_en": cell.get("En-Name", "") or code,
               "route_kind": "ecms" if cell.get("ECMS-URL") else "pull", "route_target": cell.get("ECMS-URL", "")}
        if len(code) == 5 and not code.endswith("000"):
            row["parent"], row["kind"] = code[:2] + "000", "department"
        elif len(code) == 5:
            row["kind"] = "ministry"
        entry = entry_from_row(row, number, errors)
        if entry is not None:
            out[entry["code"]] = entry
    if not out and not errors:
        errors.append(RowError(1, "OrganizationList", "the answer lists no organization"))
    if errors:
        raise ImportRefused(errors)
    return out


def etree_name(el: Any) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag.rsplit("}", 1)[-1]
