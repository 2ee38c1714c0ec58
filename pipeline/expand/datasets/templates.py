"""Layout ``aoi``: AOI definition files with ``extent_wgs84`` (the ``aoi/fusu-*.yaml``
templates) tiled synthetically, for plan-only runs."""

from __future__ import annotations

import glob
from pathlib import Path

from pipeline.errors import InputError
from pipeline.expand.adapters import SampleRecord, template_records


def read_aoi_templates(path: str, patch_px: int, gsd_m: float) -> list[SampleRecord]:
    """Synthetic tiling of AOI definitions with ``extent_wgs84`` (file, folder or glob)."""
    from pipeline.aoi import load_aoi

    p = Path(path)
    files = sorted(p.glob("*.yaml")) if p.is_dir() else [Path(f) for f in sorted(glob.glob(path))]
    if not files:
        raise InputError(f"no AOI definition files match {path!r}: fix expand.path")
    out: list[SampleRecord] = []
    for f in files:
        spec = load_aoi(f)
        if spec.extent_wgs84 is None:
            raise InputError(f"{f}: AOI {spec.name!r} has no extent_wgs84: add "
                             "[west, south, east, north] in degrees")
        out += template_records(spec.name, spec.city, spec.t1, spec.t2, spec.extent_wgs84,
                                patch_px, gsd_m)
    return out
