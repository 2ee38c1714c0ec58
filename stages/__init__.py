"""Thin Snakemake adapters: each module exposes a typed ``run(...)`` and a ``__main__`` block."""
