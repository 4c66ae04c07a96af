"""Pull inbox: the office fetches its letters (GET /v1/inbox) and acknowledges each.

Nothing is sent: a delivery to a pull office starts in the ``inbox`` state and
leaves it only when the office acknowledges it (POST /v1/inbox/{id}/ack, or an
e-CMS CorrespondenceLetterDeleteRequest), which completes the delivery and
sends the delivery receipt to the sender.
"""

from __future__ import annotations

from adapters.base import OutboundDelivery, Outcome, Permanent


class PullAdapter:
    kind = "pull"
    pushes = False

    async def deliver(self, d: OutboundDelivery) -> Outcome:
        # Only reachable if an operator re-routed a queued delivery to a pull office:
        # a pull delivery is completed by the office's acknowledgement, never pushed.
        return Permanent("pull route: deliveries wait in the inbox and are never pushed")
