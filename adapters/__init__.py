"""Delivery adapters: how a letter reaches a receiving office, one small module each.

Every adapter implements :class:`adapters.base.Adapter`. The dispatcher never
knows how an office is reached; it hands an :class:`~adapters.base.OutboundDelivery`
to the adapter named by the office's route and records the outcome.
"""
