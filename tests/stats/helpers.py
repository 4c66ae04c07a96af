"""Letters that make statistics: sent, delivered through the pull inbox, answered by the registry."""

from __future__ import annotations

from gateway.core.envelope import NotifierKind
from tests.support import TOKENS, letter_bytes, notifier_bytes


def auth(agency: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[agency]}", "Content-Type": "application/xml"}


async def send(client, sender: str, recipients: tuple[str, ...], message_id: str, **kw) -> None:
    r = await client.post("/v1/messages", data=letter_bytes(sender=sender, recipients=recipients,
                                                             message_id=message_id, **kw), headers=auth(sender))
    assert r.status == 202, await r.text()


async def take(client, agency: str, message_id: str) -> None:
    """The office fetches and acknowledges the letter from its pull inbox (the delivery completes)."""
    items = (await (await client.get("/v1/inbox?limit=100", headers=auth(agency))).json())["items"]
    item = next(i for i in items if i["message_id"] == message_id)
    r = await client.post(f"/v1/inbox/{item['delivery_id']}/ack", headers=auth(agency))
    assert r.status == 200, await r.text()


async def answer(client, registry: str, sender: str, message_id: str, kind: NotifierKind) -> None:
    r = await client.post("/v1/messages", data=notifier_bytes(sender=registry, recipient=sender, ref=message_id,
                                                               kind=kind), headers=auth(registry))
    assert r.status == 202, await r.text()
