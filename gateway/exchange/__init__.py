"""The exchange: accepting letters, their status, withdrawing them, the pull inbox, stamps, operators.

``service.Exchange`` is one object per job, built complete in one place
(:func:`service.build_exchange`, called by :mod:`gateway.http.services`):
``accept`` (a checked envelope from :mod:`gateway.intake` stored in one
transaction with one delivery row per recipient and its audit event, by group
commit; a repeated submission answers the original receipt), ``status``,
``withdrawals``, ``inbox`` (pull delivery; an acknowledgement is a delivered
transition, :mod:`gateway.storage.transitions`), ``stamps`` (the receiving
stamp) and ``operators`` (requeue, the directory's changes on record). The
e-CMS facade speaks to a narrow port of it (``Exchange.for_ecms``).

Pushing letters out is not the exchange's business: :mod:`gateway.delivery`,
its sibling, claims what the exchange stored; neither imports the other.
"""
