"""``gateway``: the argument parser, and the dispatch to the command modules.

Library errors become one readable line on stderr and a non-zero exit; the
library never imports the CLI.

The commands live by group in :mod:`gateway.cli.serve`, :mod:`gateway.cli.ops`
(db, deliveries, pki), :mod:`gateway.cli.letters` (letter, inbox, envelope,
receipt) and :mod:`gateway.cli.audit` (audit, users). This module names each
command's function as ``"module:function"`` and imports only the module of the
command being run: together the command modules load aiohttp, asyncpg, lxml,
pyHanko and the whole gateway (~0.9 s), and ``gateway --help`` or a typo in
the arguments should not wait for that (measured: ``gateway --help`` 0.07 s
this way, 0.95 s with every command module imported up front).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import importlib
import sys
import traceback
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Final

from adapters.errors import AdapterError
from gateway.core.errors import GatewayError, translate
from pki.errors import PkiError

Command = Callable[[argparse.Namespace], Coroutine[None, None, int]]


def add_common_options(sp: argparse.ArgumentParser) -> None:
    """Where the state is: the flags every command that touches it takes (see ``common.settings_from``)."""
    sp.add_argument("--data-dir", type=Path, help="state directory (GATEWAY_DATA_DIR)")
    sp.add_argument("--directory", dest="directory_path", type=Path, help="agency directory JSON")
    sp.add_argument("--database-url", help="PostgreSQL URL (GATEWAY_DATABASE_URL)")


def _command(ref: str) -> Command:
    """``"letters:letter_send"`` -> :func:`gateway.cli.letters.letter_send`, importing its module now."""
    module, _, name = ref.partition(":")
    with warnings.catch_warnings():
        # pyHanko imports cryptography's DSA key types and cryptography (46+) warns on that import, on every
        # command and at every start; the gateway never signs or accepts DSA (pki.xmlsig_policy).
        warnings.filterwarnings("ignore", message="DSA is deprecated")
        fn: Command = getattr(importlib.import_module(f"gateway.cli.{module}"), name)
    return fn


def _add_server_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("serve", help="run the gateway (HTTP API and dispatcher)")
    add_common_options(s)
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--no-dispatch", action="store_true", help="accept only; run no dispatcher workers")
    s.add_argument("--workers", type=int, help="worker processes sharing the port (GATEWAY_WORKERS)")
    s.set_defaults(run="serve:serve")

    d = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    m = d.add_parser("migrate", help="apply pending migrations")
    add_common_options(m)
    m.set_defaults(run="ops:db_migrate")

    dl = sub.add_parser("deliveries", help="inspect and requeue deliveries").add_subparsers(
        dest="deliveries_command", required=True)
    ls = dl.add_parser("list", help="list deliveries")
    add_common_options(ls)
    ls.add_argument("--status", choices=["queued", "sending", "retry_wait", "inbox", "delivered", "dead",
                                         "withdrawn"])
    ls.add_argument("--recipient")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run="ops:deliveries_list")
    rq = dl.add_parser("requeue", help="requeue dead or waiting deliveries")
    add_common_options(rq)
    rq.add_argument("delivery_ids", nargs="+")
    rq.set_defaults(run="ops:deliveries_requeue")


def _add_letter_and_pki_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lt = sub.add_parser("letter", help="letters").add_subparsers(dest="letter_command", required=True)
    sd = lt.add_parser("send",
                       help="build an envelope from fields and PDFs, sign it, submit it, keep the signed "
                       "receipt, print a summary")
    add_common_options(sd)
    sd.add_argument("--url", default="https://127.0.0.1:8443")
    sd.add_argument("--token", help="development bearer token (default: the agency's TLS client certificate)")
    sd.add_argument("--sign-key", help="PEM signing key (default: the agency's key in the development PKI)")
    sd.add_argument("--sign-cert", help="PEM signing certificate")
    sd.add_argument("--unsigned", action="store_true",
                    help="do not sign (refused unless the gateway allows it)")
    sd.add_argument("--from", dest="sender", required=True, help="sending agency code")
    sd.add_argument("--to", action="append", required=True, help="recipient agency code (repeatable)")
    sd.add_argument("--subject", required=True)
    sd.add_argument("--number", help="letter number (ที่)")
    sd.add_argument("--addressee", default="ผู้ว่าราชการจังหวัด")
    sd.add_argument("--speed", default="normal", choices=["normal", "urgent", "very-urgent", "most-urgent"])
    sd.add_argument("--secrecy", default="normal", choices=["normal", "confidential", "secret"])
    sd.add_argument("--signer-name", default="นายทดสอบ ระบบ")
    sd.add_argument("--signer-position", default="ปลัดสำนักนายกรัฐมนตรี")
    sd.add_argument("--pdf", action="append",
                    help="PDF file; the first is the main letter (repeatable); files over "
                    "4 MiB travel beside the envelope (multipart/related)")
    sd.add_argument("--multipart", action="store_true", help="send every file beside the envelope")
    sd.add_argument("--message-id")
    sd.add_argument("--receipt-out", help="where to keep the signed receipt (default DATA_DIR/receipts/ID.xml)")
    out = sd.add_mutually_exclusive_group()
    out.add_argument("--xml", action="store_true", help="print the signed receipt XML (for scripts), no summary")
    out.add_argument("--json", action="store_true", help="print the summary as JSON")
    sd.set_defaults(run="letters:letter_send")

    pk = sub.add_parser("pki", help="keys and certificates").add_subparsers(dest="pki_command", required=True)
    pi = pk.add_parser("init-dev",
                       help="create (or complete) the development PKI for the directory's agencies")
    add_common_options(pi)
    pi.add_argument("--pki-dir", type=Path, help="where (GATEWAY_PKI_DIR; default DATA_DIR/pki)")
    pi.set_defaults(run="ops:pki_init_dev")

    ev = sub.add_parser("envelope", help="envelopes").add_subparsers(dest="envelope_command", required=True)
    ec = ev.add_parser("check",
                       help="check an envelope file offline: parse, schema (every fault), attachments")
    ec.add_argument("file", help="envelope XML file, or - for standard input")
    ec.add_argument("--json", action="store_true", help="print the report as JSON")
    ec.set_defaults(run="letters:envelope_check")

    rc = sub.add_parser("receipt", help="receipts").add_subparsers(dest="receipt_command", required=True)
    rv = rc.add_parser("verify", help="verify a gateway receipt offline")
    rv.add_argument("receipt", help="receipt XML file, or - for standard input")
    rv.add_argument("--cert", required=True, help="the gateway's seal certificate (PEM)")
    rv.add_argument("--envelope", help="also check that this file is exactly the acknowledged envelope")
    rv.set_defaults(run="letters:receipt_verify")

    ib = sub.add_parser("inbox", help="pull inbox").add_subparsers(dest="inbox_command", required=True)
    il = ib.add_parser("list", help="list the calling agency's inbox")
    add_common_options(il)
    il.add_argument("--url", default="https://127.0.0.1:8443")
    il.add_argument("--agency", help="agency code whose development TLS client certificate to present")
    il.add_argument("--token", help="development bearer token")
    il.add_argument("--json", action="store_true", help="the gateway's answer as JSON (for programs)")
    il.set_defaults(run="letters:inbox_list")


def _add_audit_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    a = sub.add_parser("audit", help="tamper-evident audit log").add_subparsers(dest="audit_command",
                                                                                 required=True)
    v = a.add_parser("verify", help="verify archive files, an evidence bundle or the live database")
    add_common_options(v)
    v.add_argument("path", nargs="?", help="archive file, directory of archives, or evidence bundle (.zip)")
    v.add_argument("--cert", help="the gateway certificate (PEM or DER)")
    v.add_argument("--database", action="store_true", help="verify the chain in the database")
    v.add_argument("--at", help="the verifier's now (YYYY-MM-DD): judge each letter's signature at its proven "
                                "signing time from the kept validation material only (bundles; --database with "
                                "--letter)")
    v.add_argument("--letter", type=int, action="append", default=[],
                   help="with --database and --at: also judge this letter (pk) from the database; repeatable")
    v.add_argument("--tsa-root", action="append", default=[],
                   help="with --at: a time-stamping authority's root certificate (PEM) the bundle's evidence "
                        "records must chain to, besides --cert; repeatable")
    v.add_argument("--weak-hashes", default="",
                   help="with --at: hash algorithms the auditor holds weak, e.g. sha256@2035-01-01 (an evidence "
                        "record must have been renewed off them in time)")
    v.set_defaults(run="audit:verify")
    e = a.add_parser("export", help="export the next closed range (up to a checkpoint) to a file")
    add_common_options(e)
    e.add_argument("--out", required=True, help="archive directory")
    e.add_argument("--through", type=int, help="checkpoint seq to end at (default: the latest)")
    e.add_argument("--checkpoint", action="store_true", help="sign a checkpoint at the head first")
    e.set_defaults(run="audit:export")
    s = a.add_parser("status", help="chain head, unsealed events, last checkpoint, archives")
    add_common_options(s)
    s.set_defaults(run="audit:status")
    d = a.add_parser("drop", help="delete an exported range from the database (respects retention)")
    add_common_options(d)
    d.add_argument("--through", type=int, required=True, help="last seq of an exported archive")
    d.set_defaults(run="audit:drop")
    rn = a.add_parser("renew", help="renew RFC 4998 evidence records: time-stamps before the TSA certificate "
                      "ends, hash trees at once when a hash is declared weak (resumable)")
    add_common_options(rn)
    rn.add_argument("--chunk", type=int, default=2000, help="records per hash tree, token and commit")
    rn.add_argument("--progress", action="store_true",
                    help="a line per committed chunk on stderr even when it is not a terminal (for a log)")
    rn.set_defaults(run="audit:renew")

    u = sub.add_parser("users", help="console users and staff API tokens").add_subparsers(
        dest="users_command", required=True)
    ua = u.add_parser("add", help="add a user (password from the prompt or stdin)")
    add_common_options(ua)
    ua.add_argument("username")
    ua.add_argument("--role", required=True, choices=["agency", "operator", "auditor", "admin"])
    ua.add_argument("--agency", help="agency code (agency users only)")
    ua.set_defaults(run="audit:users_add")
    up = u.add_parser("passwd", help="set a user's password (prompt or stdin)")
    add_common_options(up)
    up.add_argument("username")
    up.set_defaults(run="audit:users_passwd")
    ud = u.add_parser("disable", help="disable (or --enable) a user")
    add_common_options(ud)
    ud.add_argument("username")
    ud.add_argument("--enable", action="store_true")
    ud.set_defaults(run="audit:users_disable")
    ut = u.add_parser("token", help="issue an API token for a staff user (printed once)")
    add_common_options(ut)
    ut.add_argument("username")
    ut.add_argument("--label", default="api")
    ut.set_defaults(run="audit:users_token")


def _add_directory_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = add_common_options
    d = sub.add_parser("directory", help="the agency directory (ทำเนียบหน่วยงาน)").add_subparsers(
        dest="directory_command", required=True)
    sh = d.add_parser("show", help="one agency's entry (now or at a past version), with --history")
    common(sh)
    sh.add_argument("code")
    sh.add_argument("--at", type=int, help="directory version")
    sh.add_argument("--history", action="store_true")
    sh.add_argument("--json", action="store_true", help="the entry as the directory file holds it (for programs)")
    sh.set_defaults(run="directory:directory_show")
    ex = d.add_parser("export", help="the whole directory as JSON or CSV (now or at a past version)")
    common(ex)
    ex.add_argument("--format", choices=["json", "csv"], default="json")
    ex.add_argument("--at", type=int, help="directory version")
    ex.add_argument("--out", help="file (default: standard output)")
    ex.set_defaults(run="directory:directory_export")
    for name, fn, text in (("diff", "directory_diff", "what importing FILE would change"),
                           ("import", "directory_import", "import FILE (JSON, CSV or an e-CMS GetOrganizationList "
                                                          "answer): prints the changes; --yes applies them")):
        p = d.add_parser(name, help=text)
        common(p)
        p.add_argument("file")
        p.add_argument("--replace", action="store_true", help="agencies not in FILE are removed")
        if name == "import":
            p.add_argument("--yes", action="store_true", help="apply the changes")
            p.add_argument("--reason", help="why (kept in the audit log)")
        p.set_defaults(run=f"directory:{fn}")
    st = d.add_parser("set", help="change one agency: field=value (name_th, kind, province, route.url, ...)")
    common(st)
    st.add_argument("code")
    st.add_argument("assignments", nargs="*")
    st.add_argument("--route-kind", choices=["push", "pull", "ecms", "folder", "via"],
                    help="a new route (its settings as route.url=..., route.agency=...)")
    st.add_argument("--reason", help="why (kept in the audit log)")
    st.set_defaults(run="directory:directory_set")
    ca = d.add_parser("cert-add", help="register an agency's certificate from its PEM (signing and/or tls)")
    common(ca)
    ca.add_argument("code")
    ca.add_argument("pem")
    ca.add_argument("--usage", default="signing,tls", help="signing, tls or signing,tls")
    ca.add_argument("--reason", help="why (kept in the audit log)")
    ca.set_defaults(run="directory:directory_cert_add")
    cr = d.add_parser("cert-retire", help="retire an agency's certificate after a rotation (refused from now on)")
    common(cr)
    cr.add_argument("code")
    cr.add_argument("sha256")
    cr.add_argument("--reason", help="why (kept in the audit log)")
    cr.set_defaults(run="directory:directory_cert_retire")


def _add_stats_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    st = sub.add_parser("stats", help="statistics and service levels (สถิติ)").add_subparsers(
        dest="stats_command", required=True)
    r = st.add_parser("roll", help="bring the rollups up to date now (gateway serve does it every 5 s)")
    add_common_options(r)
    r.set_defaults(run="stats:stats_roll")


def _add_ecms_key_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``gateway ecms-key issue|rotate|revoke|list|networks`` (:mod:`gateway.cli.keys`)."""
    k = sub.add_parser("ecms-key", help="URL keys and source networks of an agency's e-CMS client").add_subparsers(
        dest="ecms_key_command", required=True)
    for name, fn, text in (("issue", "key_issue", "issue a URL key (printed once; only its digest is kept)"),
                           ("rotate", "key_rotate", "issue a new URL key; the others retire after --overlap-days"),
                           ("revoke", "key_revoke", "refuse a URL key from now on (its id: see list)"),
                           ("list", "key_list", "the agency's modes, key ids and source networks"),
                           ("networks", "key_networks", "set the source networks the legacy listener admits")):
        p = k.add_parser(name, help=text)
        add_common_options(p)
        p.add_argument("code", metavar="AGENCY")
        if name == "revoke":
            p.add_argument("key_id")
        if name == "networks":
            p.add_argument("networks", nargs="*", metavar="CIDR")
        if name in ("issue", "rotate"):
            p.add_argument("--base-url", help="the gateway's public URL to print (default GATEWAY_PUBLIC_URL)")
        if name == "rotate":
            p.add_argument("--overlap-days", type=float, default=7.0, help="how long the old keys stay valid")
        if name != "list":
            p.add_argument("--reason", help="why (kept in the audit log)")
        p.set_defaults(run=f"keys:{fn}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gateway",
                                description="Saraban gateway: official letters between agencies")
    sub = p.add_subparsers(dest="command", required=True)
    _add_server_commands(sub)
    _add_letter_and_pki_commands(sub)
    _add_audit_commands(sub)
    _add_directory_commands(sub)
    _add_stats_commands(sub)
    _add_ecms_key_commands(sub)
    return p


#: The CLI's one translation table: domain error codes to exit statuses (sysexits.h), looked up by
#: code, then by kind (".not_found"), then by family ("auth."). Documented in the README (Commands).
EXIT_STATUS: Final[dict[str, int]] = {
    ".not_found": 66,       # EX_NOINPUT: what was asked for does not exist
    "not_found": 66,
    "unavailable": 69,      # EX_UNAVAILABLE: the database or a service is away; try again
    "unavailable.": 69,
    "throttled": 69,
    "throttled.": 69,
    "auth.": 77,            # EX_NOPERM
    "config.": 78,          # EX_CONFIG: the configuration, directory or a key is wrong
    "key.": 78,
    "pki.config": 78,
}
#: Any other domain error: the input (a letter, a receipt, a user's details) is refused.
EX_DATAERR: Final = 65
#: Not a domain error: a bug (the traceback is printed).
EX_SOFTWARE: Final = 70


def exit_status(code: str) -> int:
    return translate(EXIT_STATUS, code, EX_DATAERR)


def plain_error(exc: OSError | ValueError) -> tuple[str, str]:
    """A code and one readable line for an error that is not a domain error (exit 1)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        kind = {FileNotFoundError: "file.not_found", PermissionError: "file.permission",
                IsADirectoryError: "file.is_a_directory"}.get(type(exc), "file.unreadable")
        return kind, f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return "config.address_in_use", f"{exc.strerror}: another process listens on this host and port"
    if isinstance(exc, OSError):  # a connection refused or reset, a name that does not resolve
        return "unavailable.connect", f"{exc.strerror or exc}"
    return "input.invalid", str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _run(ref: str, args: argparse.Namespace) -> int | None:
    """Run the command ``ref`` to its end: ``gateway serve`` on the configured event loop (uvloop unless
    ``GATEWAY_EVENT_LOOP=asyncio``), every other command on asyncio's."""
    command = _command(ref)
    if ref == "serve:serve":
        # (imported here, as the command modules are: the other commands start without them)
        import uvloop

        from gateway.core.settings import Settings
        if Settings.from_env().event_loop == "uvloop":
            return uvloop.run(command(args))
    return asyncio.run(command(args))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _run(args.run, args) or 0
    except (GatewayError, PkiError, AdapterError) as exc:
        where = f" ({exc.field})" if exc.field else ""
        print(f"gateway: {exc.code}: {exc.message}{where}", file=sys.stderr)
        return exit_status(exc.code)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError) as exc:  # a file that cannot be read, a value the parser let through
        code, message = plain_error(exc)
        print(f"gateway: {code}: {message}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        print("gateway: internal error (a bug): please report the traceback above", file=sys.stderr)
        return EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
