"""The console's session key file, created by whichever gateway process starts first.

Several processes (``--workers``, or separate ``gateway serve`` processes on one
data directory) start at once; each must end up with the same full 32-byte
key, and none may read the file while another is still writing it.
"""

from __future__ import annotations

import builtins

from aiohttp import web

import gateway.http.console as console
from gateway.core import appkeys as keys
from gateway.core.settings import Settings


def _app(data_dir) -> web.Application:
    app = web.Application()
    app[keys.SETTINGS] = Settings(data_dir=data_dir)
    return app


def test_a_process_starting_while_another_writes_the_key_gets_the_same_whole_key(tmp_path, monkeypatch):
    first, second = _app(tmp_path), _app(tmp_path)
    seen: list[bytes] = []
    raced = []

    class Racing:
        """A file whose first write lets the second process start just before the bytes land."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def write(self, data):
            if not raced:
                raced.append(True)
                seen.append(console._session_key(second))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    def racing_open(*args, **kwargs):
        f = builtins.open(*args, **kwargs)
        return Racing(f) if not raced and "x" in str(args[1] if len(args) > 1 else kwargs.get("mode", "")) else f

    monkeypatch.setattr(console, "open", racing_open, raising=False)
    key = console._session_key(first)
    assert len(key) == 32 and seen == [key]
    assert (tmp_path / "session.key").read_bytes() == key
    assert (tmp_path / "session.key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["session.key"]  # no temporary file left behind


def test_an_existing_key_is_kept(tmp_path):
    (tmp_path / "session.key").write_bytes(b"k" * 32)
    assert console._session_key(_app(tmp_path)) == b"k" * 32
