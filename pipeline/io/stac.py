"""STAC catalogues: save a pystac Collection self-contained under a folder (atomic swap)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.io.atomic import atomic_path


def save_stac(catalog: Any, dest: str | Path) -> Path:
    """Save a pystac Catalog/Collection self-contained (relative links) under ``dest``.

    Written into a temporary folder and swapped into place, so a crash leaves the previous
    catalogue intact. Returns the path of the root ``collection.json`` / ``catalog.json``.
    """
    import pystac

    final = Path(dest)
    with atomic_path(final) as tmp:
        catalog.normalize_hrefs(str(tmp))
        catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED, dest_href=str(tmp))
    name = "collection.json" if isinstance(catalog, pystac.Collection) else "catalog.json"
    return final / name
