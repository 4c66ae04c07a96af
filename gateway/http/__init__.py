"""The HTTP edge: the native API, the auditor API, the console, the e-CMS route, wiring.

``app.create_app(settings)`` only wires: each long-lived resource is acquired
in ``cleanup_ctx``. ``api`` (agencies and staff), ``auditor_api``, ``console/``
(server-rendered pages), ``auth`` (tokens, client certificates), ``params``
(every query and path parameter read and checked in one place).
"""
