"""XML Schemas of the Saraban gateway, shipped as package data.

Load them through :mod:`gateway.core.xml` (``load_schema(name)``), which compiles each
once with the hardened parser and caches it; never open these files by path.

``envelope-v1.xsd`` imports the signature schemas stored beside it (W3C XML-DSig, ETSI
XAdES 1.3.2 and 1.4.1: copies, so that nothing is ever fetched); :mod:`pki.sigzone`
reads the element names they declare (through :mod:`importlib.resources`) to close
what their wildcards leave open.
"""
