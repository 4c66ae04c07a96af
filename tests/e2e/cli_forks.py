"""Runs ``gateway`` commands each in a process of its own, forked from one that has imported the CLI once.

A fresh ``python -m gateway.cli.main`` spends ~1.3 s of its ~1.5 s importing the command modules (aiohttp,
asyncpg, lxml, pyHanko, the gateway); tests/e2e/test_cli_output.py ran ~45 of them. This driver imports them
once, through the CLI's own ``_command`` (so under the same warning filters as a real run, and with ``-W error``
any new warning at import fails here), then for each request forks a child that becomes that command: stdin
/dev/null, stdout and stderr to the files named, ``sys.argv`` as ``-m gateway.cli.main`` sets it, and it ends
as an interpreter does (``SystemExit`` up to the top, then the normal shutdown: ``atexit``, unraisable
exceptions, resource warnings all still reach its stderr). Its own exit status, its own stderr.

Run as ``python -W error -m tests.e2e.cli_forks`` from the repository (the path a ``-m`` run has).
Protocol: one JSON line per request on stdin, ``{"argv": [...], "out": path, "err": path}``; one line back on
stdout, the child's exit status. Nothing in this process's frames may run in the child on its way out (no
``with`` or ``finally`` around the fork).
"""

from __future__ import annotations

import gc
import json
import os
import sys

import gateway.cli.main as cli

#: The command modules (gateway/cli/), imported the way a command imports its own.
MODULES = ("serve", "ops", "letters", "audit", "directory", "keys", "stats")


def become(argv: list[str], out: str, err: str) -> None:
    """In the child: turn into ``gateway ARGV``; never returns (SystemExit carries the status to the top)."""
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
    os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
    sys.argv = [cli.__file__, *argv]
    raise SystemExit(cli.main(argv))


def serve() -> None:
    for module in MODULES:
        cli._command(f"{module}:__name__")
    # What is imported now stays out of every child's garbage collections: without this, each child's
    # collections and shutdown walked the whole imported heap, copying its pages on write (~1-3 s a command,
    # more than a fresh interpreter); the command's own objects are collected as in any run.
    gc.freeze()
    print("ready", flush=True)
    while line := sys.stdin.readline():
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            become(request["argv"], request["out"], request["err"])
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    serve()
