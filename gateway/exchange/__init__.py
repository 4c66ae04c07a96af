"""The exchange: accepting letters, withdrawing them, inboxes, acknowledgements and status.

A checked envelope (from :mod:`gateway.intake`) is stored in one transaction
with one delivery row per recipient and its audit event, by group commit
(:mod:`gateway.storage.batching`); a duplicate submission answers the original
receipt. Delivering is not the exchange's business: :mod:`gateway.delivery`
claims what the exchange stored.
"""
