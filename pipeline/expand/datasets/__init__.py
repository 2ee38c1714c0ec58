"""Foreign change datasets for the expansion paradigm (``expand.adapter``), one module per
dataset (as torchgeo keeps one dataset per file), each holding its discovery, reading and
verification: :mod:`.index`, :mod:`.pairs`, :mod:`.oscd`, :mod:`.spacenet7`,
:mod:`.dynamicearthnet`, :mod:`.xbd`, :mod:`.templates` (AOI templates, plan-only); shared
checks and sample pixel reads in :mod:`.common`. Pixels are read through
:mod:`pipeline.io.raster`.


Each reader returns :class:`pipeline.expand.adapters.SampleRecord` objects (id, CRS, bounds,
dates, paths to the original files); :func:`pipeline.expand.adapters.build_sample_index` turns
them into the sample index. Nothing is copied or re-tiled; paths are stored as found (relative
paths of an index file are resolved against the index file's folder).

Layouts
-------
``index``
    A patch index file: GeoParquet / GeoJSON / GeoPackage / shapefile (polygons in the file's
    CRS) or CSV. Columns: ``id`` (or ``sample_id`` / ``patch_id`` / ``name``); geometry, or a
    WKT ``geometry`` column, or ``minx, miny, maxx, maxy`` (CSV: with a per-row ``crs`` column,
    so rows may use different CRSs); ``t1``, ``t2`` (or ``dates`` separated by ``;``);
    optional ``hr_t1``, ``hr_t2``, ``label``, ``label_t1``, ``label_t2``, ``city``, ``gsd_m``.
``pairs``
    ``<root>/{t1,t2}/<id>.tif`` (also ``A/B``, ``im1/im2``, ``time1/time2``), optional
    ``<root>/label/<id>.*``; georeferenced GeoTIFFs (any CRS, may differ per pair). Dates from
    ``expand.dates_file`` or ``<root>/dates.csv`` (``id,t1,t2``; id ``*`` = every pair) or
    ``<root>/dates.json`` (``{"t1": .., "t2": ..}`` or ``{"<id>": {"t1": .., "t2": ..}}``).
``oscd``
    Onera Satellite Change Detection: ``<root>/<city>/imgs_1/*.tif`` and ``imgs_2/`` (one
    GeoTIFF per band; ``imgs_1_rect/`` preferred for the georeferencing when present),
    ``<city>/dates.txt`` (``date_1: YYYYMMDD`` / ``date_2: YYYYMMDD``), labels in
    ``<city>/cm/`` or a sibling ``*Labels*/<city>/cm/`` folder. Label values: the public
    release stores 1 = no change, 2 = change (its README says 0/1); the detected convention is
    recorded in ``label_encoding`` (see :func:`pipeline.expand.adapters.change_to_binary`).
``spacenet7``
    ``<root>/[train/]<aoi>/images/global_monthly_YYYY_MM_mosaic_<aoi>.tif`` with
    ``labels[_match]/<stem>_Buildings.geojson``: one multi-date sample per AOI whose dates are
    the first day of each mosaic's month (months run first..last).
``dynamicearthnet``, ``xbd``
    :mod:`.dynamicearthnet` and :mod:`.xbd`.
``aoi``
    AOI definition YAML files with ``extent_wgs84`` (e.g. ``aoi/fusu-*.yaml`` templates): a
    synthetic tiling for plan-only runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.errors import ConfigError
from pipeline.expand.adapters import SampleRecord
from pipeline.expand.datasets.dynamicearthnet import scan_dynamicearthnet
from pipeline.expand.datasets.index import read_index
from pipeline.expand.datasets.oscd import scan_oscd
from pipeline.expand.datasets.pairs import scan_pairs
from pipeline.expand.datasets.spacenet7 import scan_spacenet7
from pipeline.expand.datasets.templates import read_aoi_templates
from pipeline.expand.datasets.xbd import scan_xbd

#: adapter name -> reader of ``expand`` settings (one entry per dataset module).
READERS: dict[str, Callable[[Any], list[SampleRecord]]] = {
    "index": lambda cfg: read_index(cfg.path),
    "pairs": lambda cfg: scan_pairs(cfg.path, cfg.dates_file),
    "oscd": lambda cfg: scan_oscd(cfg.path, cfg.oscd_change_encoding),
    "spacenet7": lambda cfg: scan_spacenet7(cfg.path),
    "dynamicearthnet": lambda cfg: scan_dynamicearthnet(cfg.path),
    "xbd": lambda cfg: scan_xbd(cfg.path),
}


def read_samples(cfg: Any) -> list[SampleRecord]:
    """Records of the dataset named by an :class:`pipeline.config.ExpandConfig`.

    Raises:
        ConfigError: no adapter / path, or adapter 'aoi' without plan_only.
        InputError: from the layout readers.
    """
    if cfg.adapter is None or not cfg.path:
        raise ConfigError("expand.adapter and expand.path must both be set to expand a dataset")
    if cfg.adapter in READERS:
        return READERS[cfg.adapter](cfg)
    if not cfg.plan_only:
        raise ConfigError(
            "expand.adapter 'aoi' tiles AOI extents synthetically and can only plan: set "
            "expand.plan_only: true (or describe real samples with adapter 'index')"
        )
    return read_aoi_templates(cfg.path, cfg.template_patch_px, cfg.template_gsd_m)
