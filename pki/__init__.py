"""PKI for the Saraban gateway: keys, development CA, trust store, XML signatures, PDF.

Modules (each with a docstring explaining its design):

* :mod:`pki.errors`   – :class:`PkiError` and its stable codes.
* :mod:`pki.keys`     – the :class:`Signer` protocol; file keys and PKCS#11 (HSM) keys.
* :mod:`pki.devca`    – development root/intermediate CA, agency and gateway certificates.
* :mod:`pki.trust`    – cached certificate validation (pyHanko certvalidator), agency binding.
* :mod:`pki.xmldsig`  – author signature, gateway seal, receipts; wrapping-resistant verification.
* :mod:`pki.pdf`      – PAdES validation and signing, the Thai receiving stamp (ตรารับ).
* :mod:`pki.thaidate` – Buddhist-era dates for people.

The package imports nothing from the gateway except :mod:`gateway.core.xml` (the one
hardened parser) and never raises a gateway error type of its own.
"""
