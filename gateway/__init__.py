"""Saraban gateway: the national exchange for Thai official letters (หนังสือราชการ).

The stages, as a letter travels (top imports bottom, never the reverse; the
contracts in pyproject.toml are checked by ``make lint``):

``cli``       the ``gateway`` command (stands over ``http``: ``gateway serve`` runs the app)
``http``      the edges: native API, auditor API, console, the e-CMS route, one route table
``ecms``      the e-CMS SOAP facade for legacy saraban systems
``exchange``  accepting, status, withdrawing, pull inbox  |  ``delivery`` dispatcher, retries
              |  ``audit`` the tamper-evident log (three siblings that do not import each other)
``intake``    the checks a submission passes, cheapest first
``storage``   all SQL, and only it
``core``      the envelope model, errors, settings, the e-CMS wire format, the seal seam

Below them all: ``adapters`` (one per route kind; imports ``core`` and ``pki``
only) and ``pki`` (keys, trust, XML and PDF signatures; imports nothing of the
gateway).
"""

__version__ = "0.1.0"
