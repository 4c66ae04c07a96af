"""The exact bytes of a conversation's answers and of the native envelopes it stores, pinned.

e-CMS clients read answers by qualified name and by position, so an answer is
part of the wire contract down to its prefixes and ``<a></a>`` for empty text;
the envelope built from an e-CMS letter is what the gateway stores as received
and seals to forward. Both are built by code that is tuned for speed
(:mod:`gateway.core.ecmswire.soap`, :mod:`gateway.core.envelope_builder`); this test says any such change
kept every byte. Delivery ids (random) are replaced by ``UUID``.

After an intended change of the bytes: ``SARABAN_UPDATE_GOLDEN=1 pytest tests/ecms/test_answer_bytes.py``
and review the diff of ``tests/ecms/golden/``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lxml import etree

from gateway.core.ecmswire import soap
from tests.ecms.conftest import load_vector
from tests.ecms.helpers import request

GOLDEN = Path(__file__).resolve().parent / "golden"
U = soap.U
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _check(name: str, data: bytes) -> None:
    data = _UUID.sub(b"UUID", data)
    path = GOLDEN / f"{name}.xml"
    if os.environ.get("SARABAN_UPDATE_GOLDEN"):
        path.write_bytes(data)
    assert path.exists(), f"no golden file {path.name}; run with SARABAN_UPDATE_GOLDEN=1 and review it"
    assert data == path.read_bytes(), name


async def _pull(facade, caller: str) -> bytes:
    answer = await facade.handle(request(U.CorrespondenceLetterInboundRequest()), caller=caller)
    pid = etree.fromstring(answer.body).findtext(".//ProcessID")
    await facade.handle(request(U.CorrespondenceLetterDeleteRequest(U.ProcessID(pid))), caller=caller)
    return answer.body


async def test_conversation_bytes(facade, exchange):
    answers = {
        "outbound-letter-vb": await facade.handle(load_vector("letter-vb-linqws"), caller="11008"),
        "outbound-letter-mildoc": await facade.handle(load_vector("letter-mildoc-xlinq"), caller="11008"),
    }
    inbound_vb, inbound_mildoc = await _pull(facade, "11002"), await _pull(facade, "11002")
    notifier = U.AcceptLetterNotifier(U.LetterID("อก 0905/0007"), U.AcceptID("รับ 1234/2567"),
                                      U.CorrespondenceDate("2012-09-07"), U.Subject("ขอเชิญประชุมคณะทำงาน"),
                                      U.AcceptDepartment(U.Code("11002")))
    answers["outbound-notifier"] = await facade.handle(
        request(U.CorrespondenceLetterOutboundRequest(notifier)), caller="11002")
    inbound_notifier = await _pull(facade, "11008")
    answers["refused-bad-date"] = await facade.handle(load_vector("letter-bad-date"), caller="11008")
    answers["fault-not-xml"] = await facade.handle(load_vector("hostile-not-xml"), caller="11008")
    answers["unauthenticated"] = await facade.handle(load_vector("time-check"), caller=None)

    for name, answer in answers.items():
        _check(f"answer-{name}", answer.body)
    _check("answer-inbound-letter-vb", inbound_vb)
    _check("answer-inbound-letter-mildoc", inbound_mildoc)
    _check("answer-inbound-notifier", inbound_notifier)
    assert len(exchange.order) == 3
    for name, msg in zip(("letter-vb", "letter-mildoc", "notifier"), exchange.order, strict=False):
        _check(f"stored-{name}", msg.envelope)
        assert msg.evidence is not None and msg.channel == "ecms"
