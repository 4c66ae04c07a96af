"""e-CMS (TH e-GIF correspondence exchange) compatibility: SOAP 1.1 facade at
``/ecms-ws01/service2`` so that existing saraban systems reach the gateway by
changing only a URL. See :mod:`gateway.ecms.handler` for the operations and
``gateway/ecms/CODES.md`` for the stable ErrorCodes.
"""

from __future__ import annotations

from typing import Any


def setup_routes(app: Any, *args: Any, **kwargs: Any) -> None:
    """Register the SOAP endpoint on an aiohttp application (see :func:`gateway.ecms.handler.setup_routes`)."""
    from gateway.ecms.handler import setup_routes as _setup

    _setup(app, *args, **kwargs)
