"""adapters.wire._header_lines checks the whole text at once: the same bytes and the same refusals as the
header-by-header way it replaced (kept here as the reference)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.wire import _header_lines


def header_by_header(headers: Mapping[str, str]) -> bytes:
    lines = []
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n") or ":" in name:
            raise ValueError(f"header {name!r}: CR, LF or a colon where none may be")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


def outcome(write, headers: Mapping[str, str]) -> bytes | str:
    try:
        return write(headers)
    except (ValueError, UnicodeEncodeError) as exc:
        return f"{type(exc).__name__}: {exc}"


_text = st.text(st.sampled_from("aZ09-_: \r\n\tก\x85é;="), max_size=12)


@given(st.dictionaries(_text, _text, max_size=6))
def test_the_same_bytes_and_refusals_as_header_by_header(headers: dict[str, str]) -> None:
    assert outcome(_header_lines, headers) == outcome(header_by_header, headers)


@pytest.mark.parametrize("headers", [
    {"X-Saraban-Message-Id": "a\r\nX-Evil: 1"}, {"X-A": "1", "X-B": "2\n"}, {"X:B": "1"}, {"X-A\r": "1"}])
def test_injection_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="CR, LF or a colon"):
        _header_lines(headers)


def test_a_push_head() -> None:
    assert _header_lines({"Content-Type": "application/xml; charset=utf-8", "X-Saraban-Attempt": "1"}) == \
        b"Content-Type: application/xml; charset=utf-8\r\nX-Saraban-Attempt: 1\r\n"
