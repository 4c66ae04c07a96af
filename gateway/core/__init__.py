"""The bottom stage: what every other stage speaks.

The envelope model (``envelope``), its reader and builder (``envelope_reader``,
``envelope_builder``), the e-CMS wire format that both the facade and the
e-CMS node adapter speak (``ecmswire/``), receipts (``receipts``), the
error root and its domain codes (``errors``), the clock (``clock``), settings
types (``settings``), the directory model (``directory``), the part model of
files beside the envelope (``parts``), the seal seam (``sealing``), metrics,
logging, the typed application keys (``appkeys``) and the wiring between the
gateway and ``pki`` (``signing``: trust, verifier, seal, TLS).

``core`` imports nothing else of ``gateway``; ``adapters`` may import it.
"""
