"""The e-CMS wire format (TH e-GIF correspondence exchange), below both of its users.

The SOAP facade (:mod:`gateway.ecms`) reads what e-CMS clients send and answers them; the
legacy-node adapter (:mod:`adapters.ecms_node`) speaks to an office's own e-CMS node as a client.
Both need the same reading and writing, so it lives here, in the core, where adapters may import it:

* :mod:`.soap`: SOAP 1.1 + WS-Addressing, reading requests and building answers;
* :mod:`.tables`: the code tables (SpeedCode, SecretCode, MIME types, notifier elements);
* :mod:`.records`: e-CMS letters and notifiers as records;
* :mod:`.reading`: records from XML (and the small parsers: dates, codes, base64);
* :mod:`.building`: XML from records;
* :mod:`.mapping`: records to and from native envelopes.

Failures are :class:`.errors.EcmsError`, a :class:`gateway.core.errors.GatewayError` with a stable
domain code (``ecms.invalid_date`` ...). Which e-CMS ErrorCode and HTTP status a client gets for one is
decided at the edge, by the facade's one translation table (:mod:`gateway.ecms.codes`), not here.
"""
