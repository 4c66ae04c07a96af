"""Search the agency directory in memory: by Thai or English name, code, kind and province.

A scan over a national directory (11,000 agencies) that lower-cases every name on each call
costs several milliseconds; so the first search of a :class:`Directory` builds a small index
(per agency one lower-cased text of code and names, plus the agencies of each kind and of
each province, all in code order) and keeps it for that directory until its snapshot is
replaced (:meth:`Directory.on_change` drops it). Nothing is kept for a directory no longer
referenced (a weak mapping).
"""

from __future__ import annotations

import bisect
import itertools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.directory import Agency, Directory


@dataclass(frozen=True)
class _Index:
    version: int
    size: int
    agencies: tuple[Agency, ...]
    texts: tuple[str, ...]
    """Per agency (same order): code, Thai and English name, case-folded, joined by NUL (so that
    a query never matches across two fields)."""
    by_kind: dict[str, tuple[int, ...]]
    by_province: dict[str, tuple[int, ...]]
    codes: tuple[str, ...]
    """The codes, sorted (a code prefix is one contiguous run: found by bisection)."""
    blob: str
    """``texts`` joined by newlines, searched with one ``str.find`` per hit instead of a loop in Python."""
    starts: tuple[int, ...]
    """Where each agency's text starts in ``blob``."""


_INDEXES: weakref.WeakKeyDictionary[Directory, _Index] = weakref.WeakKeyDictionary()
_WATCHED: weakref.WeakSet[Directory] = weakref.WeakSet()


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())


def _index(directory: Directory) -> _Index:
    index = _INDEXES.get(directory)
    if index is not None and index.version == directory.version and index.size == len(directory):
        return index
    agencies = tuple(directory.all())
    by_kind: dict[str, list[int]] = {}
    by_province: dict[str, list[int]] = {}
    for i, a in enumerate(agencies):
        by_kind.setdefault(a.kind, []).append(i)
        if a.province is not None:
            by_province.setdefault(a.province, []).append(i)
    texts = tuple("\x00".join((a.code, _normal(a.name_th), _normal(a.name_en))) for a in agencies)
    starts = list(itertools.accumulate((len(t) + 1 for t in texts[:-1]), initial=0)) if texts else []
    index = _Index(directory.version, len(agencies), agencies, texts,
                   {k: tuple(v) for k, v in by_kind.items()}, {k: tuple(v) for k, v in by_province.items()},
                   tuple(a.code for a in agencies), "\n".join(texts), tuple(starts))
    _INDEXES[directory] = index
    if directory not in _WATCHED:
        _WATCHED.add(directory)
        directory.on_change(_forget)
    return index


def _forget(directory: Directory) -> None:
    _INDEXES.pop(directory, None)


def search(directory: Directory, q: str | None = None, kind: str | None = None,
           province: str | None = None, limit: int = 50) -> list[Agency]:
    """Agencies matching every criterion given, in code order, at most ``limit``.

    ``q`` matches a code prefix (digits only) or a part of the Thai or English name (case and
    repeated spaces ignored); ``kind`` is one of ``KINDS``; ``province`` a 2-digit code.
    """
    if limit <= 0:
        return []
    index = _index(directory)
    needle = _normal(q.replace("\x00", "")) if q else ""
    if needle and kind is None and province is None:
        return _everywhere(index, needle, limit)
    candidates: Sequence[int] = range(len(index.agencies))
    if kind is not None:
        candidates = index.by_kind.get(kind, ())
    if province is not None:
        in_province = index.by_province.get(province, ())
        candidates = in_province if kind is None else [i for i in in_province if index.agencies[i].kind == kind]
    out: list[Agency] = []
    if not needle:
        out = [index.agencies[i] for i in candidates[:limit]]
    elif needle.isdigit():
        for i in candidates:
            if index.agencies[i].code.startswith(needle):
                out.append(index.agencies[i])
                if len(out) == limit:
                    break
    else:
        texts = index.texts
        for i in candidates:
            if needle in texts[i]:
                out.append(index.agencies[i])
                if len(out) == limit:
                    break
    return out


def _everywhere(index: _Index, needle: str, limit: int) -> list[Agency]:
    """A query over the whole directory: a code-prefix run by bisection, or ``str.find`` over the blob."""
    out: list[Agency] = []
    if needle.isdigit():
        i = bisect.bisect_left(index.codes, needle)
        while i < len(index.codes) and len(out) < limit and index.codes[i].startswith(needle):
            out.append(index.agencies[i])
            i += 1
        return out
    blob, starts = index.blob, index.starts
    at = blob.find(needle)
    while at >= 0 and len(out) < limit:
        i = bisect.bisect_right(starts, at) - 1
        out.append(index.agencies[i])
        at = blob.find(needle, starts[i + 1]) if i + 1 < len(starts) else -1
    return out
