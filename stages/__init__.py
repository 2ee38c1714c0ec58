"""Snakemake rule adapters: each ``stages/<rule>.py`` parses the ``snakemake`` object and calls
the rule's driver in :mod:`pipeline` (see ``stages/_common.py``)."""
