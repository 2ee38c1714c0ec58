"""Stage ``demo_scenes``: synthetic Sentinel-1/2 scene archive of a generated demo AOI.

Rasterises the demo city's T1 / T2 class polygons (:func:`pipeline.demo.city_polygons`) at
10 m over their extent + 900 m margin and simulates every month of the AOI
(:mod:`pipeline.demo_scenes`) into ``aoi.sentinel_archive``; the output is the done marker
``<archive>/done.json`` (summary: change month, scenes per month, cloud covers).
"""

import logging
import time
from pathlib import Path
from typing import Any

from affine import Affine

from pipeline.config import AoiSpec, DemoConfig, parse_section
from pipeline.errors import ConfigError
from pipeline.io import write_json

log = logging.getLogger("pipeline.demo_scenes")


def run(aoi: AoiSpec, cfg: DemoConfig, done: str | Path | None = None) -> dict[str, Any]:
    """Generate the archive of ``aoi`` (must be ``generated: true`` with a sentinel_archive)."""
    from pipeline import demo
    from pipeline.demo_scenes import generate_archive, scene_extent

    if not aoi.generated or not aoi.sentinel_archive:
        raise ConfigError(
            f"AOI {aoi.name!r}: demo scenes are only generated for 'generated: true' AOIs with a "
            "'sentinel_archive' path"
        )
    t0 = time.perf_counter()
    t1, t2 = demo.city_polygons(cfg)
    bounds = tuple(t1.total_bounds)
    x0, y0, w, h = scene_extent(bounds)  # type: ignore[arg-type]
    tr = Affine(10.0, 0.0, x0, 0.0, -10.0, y0)
    c1 = demo.rasterize_classes(t1, tr, (h, w))
    c2 = demo.rasterize_classes(t2, tr, (h, w))
    archive = Path(aoi.sentinel_archive)
    summary = generate_archive(
        archive, c1, c2, f"EPSG:{cfg.epsg}", x0, y0, aoi.months, cfg.seed,
        tuple(cfg.s2_acquisitions_per_month), tuple(cfg.s1_acquisitions_per_month),
    )
    summary.update(aoi=aoi.name, extent={"x0": x0, "y0": y0, "width_px": w, "height_px": h},
                   crs=f"EPSG:{cfg.epsg}", seconds=round(time.perf_counter() - t0, 2))
    write_json(Path(done) if done else archive / "done.json", summary)
    log.info("demo scenes %s: %dx%d px, %d months, change in %s (%.1f s)", aoi.name, w, h,
             len(aoi.months), summary["change_month"], summary["seconds"])
    return summary


def _main(smk: Any) -> None:
    aoi = AoiSpec.model_validate(dict(smk.params.aoi))
    run(aoi, parse_section("demo", dict(smk.params.cfg)), smk.output[0])


if __name__ == "__main__":
    from stages._common import smk_main

    smk_main(snakemake, _main)  # type: ignore[name-defined]  # noqa: F821
