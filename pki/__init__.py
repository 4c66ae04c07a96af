"""PKI for the Saraban gateway: keys, development CA, trust store, XML signatures, PDF.

Modules (each with a docstring explaining its design):

* :mod:`pki.errors`   – :class:`PkiError` and its stable codes.
* :mod:`pki.keys`     – the :class:`Signer` protocol; file keys and PKCS#11 (HSM) keys.
* :mod:`pki.certfactory` – minting certificates under a CA, strict profiles that tests can bend.
* :mod:`pki.devca`    – the development PKI: root/intermediate CA, agency and gateway certificates.
* :mod:`pki.trust`    – cached certificate validation (pyHanko certvalidator), agency binding.
* :mod:`pki.xmlparse` – the one hardened XML parser (no DTD, no entities, bounded size).
* XML signatures of the envelope, one role a module:

  * :mod:`pki.xmlsig_parts`   – where the signatures sit, the parts they cover, the id index.
  * :mod:`pki.xmlsig_policy`  – algorithm allow-lists and the reference rules, checked before any crypto.
  * :mod:`pki.xmlsig_signxml` – signxml signing and verifying in place; its errors as stable codes.
  * :mod:`pki.xmlsig_lean`    – the gateway's own signatures built without signxml's overhead.
  * :mod:`pki.sign`           – the author's signature.
  * :mod:`pki.verify`         – verifying the author's signature (wrapping-resistant), the report.
  * :mod:`pki.seal`           – the gateway seal, made and verified.
  * :mod:`pki.receipts`       – signed receipts and offices' signed delivery acknowledgements.

* :mod:`pki.ltv`      – what a validation relied on (path, OCSP answers, CRLs), kept content-addressed.
* :mod:`pki.ltv_verify` – judging a signature years later from that material (pyHanko past validation).
* :mod:`pki.pdf`      – PAdES validation and signing, the Thai receiving stamp (ตรารับ).
* :mod:`pki.thaidate` – Buddhist-era dates for people.

The package imports nothing from the gateway (an import-linter contract says so) and never
raises a gateway error type: the gateway translates :class:`pki.errors.PkiError` at its edges.
"""
