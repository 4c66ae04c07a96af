"""A real gateway served from its own event loop in a thread, for clients that block (schemathesis).

schemathesis calls the API with ``requests``, synchronously; a gateway on the test session's
event loop would never answer (that loop does not run while a synchronous test does). So the
gateway of ``tests.fuzz.conftest.start_gateway`` (real aiohttp server on loopback, real
PostgreSQL) runs on a loop of its own in a daemon thread, and the test talks to it over TCP
like any client. A few letters are seeded so that listings, inboxes and exports have rows.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests

from tests.fuzz.conftest import Gateway, start_gateway
from tests.fuzz.staff import staff_tokens
from tests.support import CMI, KKN, OPM, TOKENS, letter_bytes

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread; :meth:`run` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-gateway", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class LiveGateway:
    url: str
    tokens: dict[str, str]
    """Who -> bearer token: the agencies' development tokens and the staff users' API tokens."""
    seeded: list[str] = field(default_factory=list)
    """Message ids of the seeded letters (OPM to CMI and KKN)."""
    session: requests.Session = field(default_factory=requests.Session)


def start(database_url: str, data_dir: Path, pki_dir: Path) -> tuple[LoopThread, Gateway, LiveGateway]:
    loop = LoopThread()
    gw = loop.run(start_gateway(database_url, data_dir, pki_dir))
    staff = loop.run(staff_tokens(gw.pool))
    live = LiveGateway(url=gw.url, tokens={"agency": TOKENS[OPM], "recipient": TOKENS[CMI], **staff})
    for n in range(3):
        message_id = f"seeded-{n}"
        r = live.session.post(f"{live.url}/v1/messages", data=letter_bytes(message_id=message_id, recipients=(CMI, KKN)),
                              headers={"Authorization": f"Bearer {TOKENS[OPM]}", "Content-Type": "application/xml"})
        assert r.status_code == 202, r.text
        live.seeded.append(message_id)
    return loop, gw, live


def stop(loop: LoopThread, gw: Gateway, live: LiveGateway) -> None:
    live.session.close()
    loop.run(gw.pool.close())
    loop.run(gw.client.close())
    loop.stop()
