"""Letters that make statistics: sent, delivered through the pull inbox, answered by the registry."""

from __future__ import annotations

from gateway.core.envelope import NotifierKind
from gateway.storage import transitions
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


async def refuse(pool, message_id: str, recipient: str, *, at, reason: str = "HTTP 410 Gone") -> None:
    """The office refuses the delivery for good (a dead letter), as the dispatcher records it: the
    delivery is claimed by a worker, then its permanent refusal is applied as a transition."""
    row = await pool.fetchrow("UPDATE deliveries d SET status = 'sending', leased_by = 'test-worker', attempts = 1 "
                              "FROM messages m WHERE m.pk = d.message_pk AND m.message_id = $1 AND d.recipient = $2 "
                              "RETURNING d.id, d.message_pk", message_id, recipient)
    (applied,) = await transitions.apply(pool, [transitions.Transition(
        delivery_id=row["id"], outcome="dead", at=at, message_pk=row["message_pk"], recipient=recipient,
        actor="gateway", details={"reason": reason, "permanent": True}, worker="test-worker", attempt=1,
        started_at=at, reason=reason, permanent=True, reset_destination=True)])
    assert applied
