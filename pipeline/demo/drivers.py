"""Drivers of the demo rules: ``demo_inputs`` (HR images + annotations of a generated AOI) and
``demo_scenes`` (its synthetic Sentinel-1/2 scene archive). Both are deterministic for a given
``demo`` config section.

* :func:`demo_inputs` writes the four files a generated AOI definition (``aoi/demo.yaml``,
  ``generated: true``) references: ``images.t1`` / ``images.t2`` (RGB uint8 GeoTIFF, nodata 0)
  and ``annotations.t1`` / ``annotations.t2`` (GeoPackage, attribute ``class``).
* :func:`demo_scenes` rasterises the demo city's T1 / T2 class polygons at 10 m over their
  extent + 900 m margin and simulates every month of the AOI (:mod:`pipeline.demo.sentinel_scenes`)
  into ``aoi.sentinel_archive`` (band files are COGs) plus its static STAC catalogue
  ``<archive>/catalog.json`` (what ``sentinel.source: stac`` reads); the output is the done
  marker ``<archive>/done.json``
  (summary: change month, scenes per month, cloud covers).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from affine import Affine

from pipeline.aoi import AoiSpec
from pipeline.config import DemoConfig
from pipeline.demo import city
from pipeline.demo.render import iter_render, prepare_layer
from pipeline.demo.sentinel_scenes import generate_archive, scene_extent
from pipeline.errors import ConfigError
from pipeline.io.geotiff import write_rgb_windows
from pipeline.io.jsonfile import write_json
from pipeline.io.stac_catalog import write_scene_catalog
from pipeline.io.vector import write_gpkg

log = logging.getLogger(__name__)


def demo_inputs(aoi: AoiSpec, cfg: DemoConfig, window_px: int = 1024) -> dict[str, Any]:
    """Driver of rule ``demo_inputs``: generate the demo inputs at the paths ``aoi`` names.

    Returns:
        Summary dict: change_fraction, n_polygons_t1/t2, classes, seconds.

    Raises:
        ConfigError: the AOI is not marked ``generated: true`` or lacks image/annotation paths.
    """
    if not aoi.generated or aoi.images is None or aoi.annotations is None:
        raise ConfigError(
            f"AOI {aoi.name!r} is not a generated demo AOI: set 'generated: true' and give "
            "images.t1/t2 and annotations.t1/t2 paths in its definition, or remove it from "
            "the demo_inputs targets"
        )
    t0 = time.perf_counter()
    clean1, clean2 = city.city_polygons(cfg)
    frac = city.change_fraction(clean1, clean2, cfg.size_m**2)
    ann1, ann2 = city.annotation_polygons(cfg)
    log.info("demo %s: %d/%d polygons, change fraction %.3f (%.1f s)", aoi.name, len(ann1),
             len(ann2), frac, time.perf_counter() - t0)
    write_gpkg(ann1, Path(aoi.annotations.t1), layer=None)
    write_gpkg(ann2, Path(aoi.annotations.t2), layer=None)
    g1, g2 = city.demo_grids(cfg)
    for date, ann, grid, out in (("t1", ann1, g1, aoi.images.t1), ("t2", ann2, g2, aoi.images.t2)):
        t = time.perf_counter()
        layer = prepare_layer(ann, cfg, date)
        write_rgb_windows(Path(out), width=grid.width, height=grid.height,
                          transform=grid.transform, crs=grid.crs,
                          windows=iter_render(layer, grid, cfg, window_px))
        log.info("wrote %s (%dx%d px, %.1f s)", out, grid.width, grid.height,
                 time.perf_counter() - t)
    summary = {
        "aoi": aoi.name,
        "change_fraction": frac,
        "n_polygons_t1": len(ann1),
        "n_polygons_t2": len(ann2),
        "classes_t1": sorted(int(c) for c in set(ann1["class"])),
        "classes_t2": sorted(int(c) for c in set(ann2["class"])),
        "seconds": time.perf_counter() - t0,
    }
    log.info("demo inputs done: %s", summary)
    return summary


def demo_scenes(aoi: AoiSpec, cfg: DemoConfig, done: str | Path | None = None) -> dict[str, Any]:
    """Driver of rule ``demo_scenes``: the scene archive of ``aoi`` (``generated: true`` with a
    ``sentinel_archive``); returns the summary written to ``done``.

    Raises:
        ConfigError: the AOI is not a generated AOI with a scene archive.
    """
    if not aoi.generated or not aoi.sentinel_archive:
        raise ConfigError(
            f"AOI {aoi.name!r}: demo scenes are only generated for 'generated: true' AOIs with a "
            "'sentinel_archive' path"
        )
    t0 = time.perf_counter()
    t1, t2 = city.city_polygons(cfg)
    bounds = tuple(t1.total_bounds)
    x0, y0, w, h = scene_extent((bounds[0], bounds[1], bounds[2], bounds[3]))
    tr = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    c1 = city.rasterize_classes(t1, tr, (h, w))
    c2 = city.rasterize_classes(t2, tr, (h, w))
    archive = Path(aoi.sentinel_archive)
    summary = generate_archive(
        archive, c1, c2, f"EPSG:{cfg.epsg}", x0, y0, aoi.months, cfg.seed,
        cfg.s2_acquisitions_per_month, cfg.s1_acquisitions_per_month,
    )
    catalog = write_scene_catalog(archive)
    summary["catalog"] = str(catalog)
    summary.update(aoi=aoi.name, extent={"x0": x0, "y0": y0, "width_px": w, "height_px": h},
                   crs=f"EPSG:{cfg.epsg}", seconds=round(time.perf_counter() - t0, 2))
    write_json(Path(done) if done else archive / "done.json", summary)
    log.info("demo scenes %s: %dx%d px, %d months, change in %s (%.1f s)", aoi.name, w, h,
             len(aoi.months), summary["change_month"], summary["seconds"])
    return summary
