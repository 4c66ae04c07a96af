"""How failures reach an e-CMS client: one translation of domain errors (GatewayError, PkiError)
into ErrorCodes, never ECMS-500 for them; ECMS-500 only for bugs, logged and counted."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest

from gateway.core.ecmswire import soap
from gateway.core.errors import GatewayError
from gateway.core.metrics import Metrics
from gateway.ecms import codes, handler
from gateway.ecms.handler import EcmsExchange, EcmsFacade
from gateway.ecms.lookups import LOOKUPS
from gateway.exchange.service import LegacyPort
from pki.errors import KeyUnavailable, PdfError
from tests.ecms.conftest import load_vector
from tests.ecms.helpers import body_child, errors, request

ROOT = Path(__file__).resolve().parents[2]


def _pki_codes() -> list[str]:
    """The stable codes in the table of pki/errors.py's docstring."""
    doc = (ROOT / "pki" / "errors.py").read_text(encoding="utf-8")
    return re.findall(r"^([a-z_]+\.[a-z_.]+)\s+\d{3}\s", doc, re.M)


def _gateway_codes() -> set[str]:
    """Every literal error code in the gateway, the PKI library and the adapters."""
    found: set[str] = set()
    for package in ("gateway", "pki", "adapters"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            found.update(re.findall(r'\bcode\s*=\s*"([a-z_]+(?:\.[a-z_]+)*)"', text))
    return found


def test_codes_md_lists_the_translation():
    text = (ROOT / "gateway" / "ecms" / "CODES.md").read_text(encoding="utf-8")
    assert codes.translation_markdown() in text


def test_the_translation_names_documented_codes_and_never_ecms_500():
    assert set(codes.TO_WIRE.values()) <= set(codes.CODES)
    assert "ECMS-500" not in codes.TO_WIRE.values()


@pytest.mark.parametrize("code", _pki_codes())
def test_every_pki_code_has_its_own_row_or_family(code):
    family = code.partition(".")[0] + ".*"
    assert code in codes.TO_WIRE or family in codes.TO_WIRE, code


def test_no_code_in_the_tree_becomes_ecms_500():
    found = _gateway_codes()
    assert {"pdf.unreadable", "auth.wrong_sender", "message.id_reused"} <= found  # the scan sees them
    for code in sorted(found):
        assert codes.ecms_code_for(GatewayError("x", code=code)) != "ECMS-500", code


def test_pdf_error_is_a_refusal():
    wire = codes.to_wire(PdfError("cannot read the PDF", field="Attachments/Attachment[@role='main']"))
    assert wire.code == "ECMS-309"
    assert wire.description == "[pdf.unreadable @ Attachments/Attachment[@role='main']] cannot read the PDF"


def test_every_operation_has_a_handler(facade):
    assert set(soap.OPERATIONS) == set(LOOKUPS) | set(facade.operations)
    assert not set(LOOKUPS) & set(facade.operations)


def test_the_exchange_takes_what_the_facade_passes():
    """The facade codes against EcmsExchange; the methods of the exchange's port (LegacyPort) must accept
    the same names (``ack(ack=...)``: the protocol once named it ``receipt``)."""
    for name, member in inspect.getmembers(EcmsExchange, inspect.isfunction):
        if name.startswith("_"):
            continue
        wanted = list(inspect.signature(member).parameters.values())[1:]
        have = inspect.signature(getattr(LegacyPort, name)).parameters
        for p in wanted:
            assert p.name in have, f"LegacyPort.{name} has no parameter {p.name}"
            assert have[p.name].kind == p.kind, f"LegacyPort.{name}({p.name}) is {have[p.name].kind}, not {p.kind}"


# ----------------------------------------------------------------- through the facade


def _failing_submit(exc: BaseException):
    async def submit(*args, **kwargs):
        raise exc

    return submit


async def test_a_pki_error_on_submission_is_an_error_detail(facade, exchange, monkeypatch):
    monkeypatch.setattr(exchange, "submit", _failing_submit(PdfError("cannot read the PDF")))
    answer = await facade.handle(load_vector("letter-vb-linqws"), caller="11008")
    assert answer.status == 200 and errors(answer.body) == ["ECMS-309"]
    assert body_child(answer.body).tag == "CorrespondenceLetterOutboundResponse"
    assert exchange.order == []


async def test_a_domain_error_the_gateway_cannot_help_now_is_503(facade, exchange, monkeypatch):
    monkeypatch.setattr(exchange, "submit", _failing_submit(KeyUnavailable("the HSM token is not present")))
    answer = await facade.handle(load_vector("letter-vb-linqws"), caller="11008")
    assert answer.status == 503 and errors(answer.body) == ["ECMS-503"]


class _Log:
    def __init__(self) -> None:
        self.exceptions: list[tuple[str, type[BaseException] | None]] = []

    def exception(self, event: str, **kw: object) -> None:
        self.exceptions.append((event, sys.exc_info()[0]))

    def info(self, event: str, **kw: object) -> None:
        pass


async def test_a_bug_is_ecms_500_logged_with_its_traceback_and_counted(exchange, settings, clock, monkeypatch):
    metrics = Metrics()
    facade = EcmsFacade(exchange, settings=settings, clock=clock.now, metrics=metrics)
    log = _Log()
    monkeypatch.setattr(handler, "log", log)
    monkeypatch.setattr(exchange, "submit", _failing_submit(RuntimeError("a bug")))
    answer = await facade.handle(load_vector("letter-vb-linqws"), caller="11008")
    assert answer.status == 500 and errors(answer.body) == ["ECMS-500"]
    assert b"a bug" not in answer.body  # the client learns nothing of the bug itself
    assert log.exceptions == [("ecms request failed", RuntimeError)]
    assert metrics.registry.get_sample_value("gateway_unhandled_errors_total", {"edge": "ecms"}) == 1
    # a refusal is not counted as a bug
    await facade.handle(request(soap.U.GetSpeedCodes()), caller=None)
    assert metrics.registry.get_sample_value("gateway_unhandled_errors_total", {"edge": "ecms"}) == 1
