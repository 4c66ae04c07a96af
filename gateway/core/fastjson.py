"""orjson where its bytes are, by construction, the standard library's ``json`` bytes.

orjson writes a value a tenth as costly as ``json``, and for most values the same bytes; not for all:
a float (``1e-05`` is ``0.00001`` there), an enum (its value, where ``json`` refuses or calls
``default``), a UUID, a datetime or a dataclass (written, where ``json`` refuses), an integer past 64
bits or a non-``str`` key (refused, where ``json`` writes them). :func:`plain` says a value is made
only of the types both write alike: ``dict`` with ``str`` keys, ``list``, ``tuple``, ``str``, ``int``
within 64 bits, ``bool`` and ``None``, those exact types (no subclass). The callers write such a value
with orjson (:func:`orjson_bytes`) and anything else with ``json`` as before (:func:`gateway.audit.chain.dumps`,
:func:`gateway.storage.db.encode_json`); ``tests/audit/test_chain_dumps.py`` and
``tests/unit/test_encode_json.py`` hold each to ``json``'s bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # orjson's integers (it refuses others)


def plain(obj: Any) -> bool:
    """``obj`` is made only of the types whose orjson bytes are ``json``'s (see the module docstring).
    Raises ``RecursionError`` on a value nested deeper than the interpreter's limit."""
    t = type(obj)
    if t is dict:
        for k, v in obj.items():  # the usual shape (flat, scalar values) without a call per value
            if type(k) is not str:
                return False
            tv = type(v)
            if tv is str or tv is bool or v is None:
                continue
            if tv is int:
                if not _INT_MIN <= v <= _INT_MAX:
                    return False
            elif not plain(v):
                return False
        return True
    if t is list or t is tuple:
        return all(plain(v) for v in obj)
    if t is str or t is bool or obj is None:
        return True
    return t is int and _INT_MIN <= obj <= _INT_MAX


def orjson_bytes(obj: Any, *, sort_keys: bool = False) -> bytes | None:
    """orjson's compact bytes of ``obj`` when :func:`plain` (``json``'s bytes with ``separators=(",", ":")``,
    ``ensure_ascii=False``); None when the caller must write it with ``json``: not plain, a lone surrogate
    orjson refuses, or nesting deeper than the interpreter's limit."""
    try:
        if plain(obj):
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except (orjson.JSONEncodeError, RecursionError):
        pass
    return None
