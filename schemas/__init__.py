"""XML Schemas of the Saraban gateway, shipped as package data.

Load them through :mod:`gateway.core.xml` (``load_schema(name)``), which compiles each
once with the hardened parser and caches it; never open these files by path.
"""
