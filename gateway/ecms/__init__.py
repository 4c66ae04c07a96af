"""e-CMS (TH e-GIF correspondence exchange) compatibility: SOAP 1.1 facade at
``/ecms-ws01/service2`` so that existing saraban systems reach the gateway by
changing only a URL.

* :mod:`gateway.ecms.endpoint`: the aiohttp route (``setup_routes``), body limits and wiring;
* :mod:`gateway.ecms.auth`: who is calling (client certificate or token);
* :mod:`gateway.ecms.settings`: the facade's settings;
* :mod:`gateway.ecms.handler`: the facade (:class:`~gateway.ecms.handler.EcmsFacade`): parse, check, answer;
* :mod:`gateway.ecms.sending`, :mod:`gateway.ecms.queue`: the operations by role (letters and notifiers
  out; pull, delete, withdraw, status);
* :mod:`gateway.ecms.ports`: what they share, and the
  exchange interface they use (:class:`~gateway.ecms.ports.EcmsExchange`);
* :mod:`gateway.ecms.lookups`: the look-ups answered from the directory and code tables;
* :mod:`gateway.ecms.legacy`: legacy XML-DSig letter signatures, verified as a report;
* :mod:`gateway.ecms.codes`: the stable ErrorCodes (``gateway/ecms/CODES.md``) and the one
  translation of domain errors into them.

The wire format itself (SOAP, letters, notifiers, mapping to native envelopes) is
:mod:`gateway.core.ecmswire`, shared with the legacy-node adapter.
"""
