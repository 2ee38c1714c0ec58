"""Sentinel-1/2 monthly composite sources behind one protocol (see :mod:`pipeline.sources.base`)."""
