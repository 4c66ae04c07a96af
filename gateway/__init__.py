"""Saraban gateway: the national exchange for Thai official letters (หนังสือราชการ)."""

__version__ = "0.1.0"
