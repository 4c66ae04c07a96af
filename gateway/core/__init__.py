"""The bottom stage: what every other stage speaks.

The envelope model and its builder (``envelope``), receipts (``receipts``), the
error root and its domain codes (``errors``), the clock (``clock``), settings
types (``settings``), the directory model (``directory``), the part model of
files beside the envelope (``parts``), the seal seam (``sealing``), metrics,
logging, the typed application keys (``appkeys``) and the wiring between the
gateway and ``pki`` (``signing``: trust, verifier, seal, TLS).

``core`` imports nothing else of ``gateway``; ``adapters`` may import it.
"""
