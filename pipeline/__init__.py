"""FUSU-style multi-temporal, multi-source land-use change dataset build pipeline."""

__version__ = "0.1.0"
