"""Intake: the checks a submission passes before anything is stored.

Cheapest first: admission (rate and queue depth, ``limits``), size, the
hardened parse and the XSD, the directory and policy checks, then the
signature (which may reach the network for revocation data), then the
attachments (``checks``). ``offline`` runs the same parse, schema and
attachment checks for an integrator's file with no server.

Intake reads no database: what it returns (:class:`checks.CheckedEnvelope`)
is what the exchange stores.
"""
