"""Stage ``demo_inputs``: generate the synthetic demo AOI's HR images and annotations.

Writes the four files a generated AOI definition (``aoi/demo.yaml``, ``generated: true``)
references: ``images.t1`` / ``images.t2`` (RGB uint8 GeoTIFF, nodata 0) and
``annotations.t1`` / ``annotations.t2`` (GeoPackage, attribute ``class``). Deterministic for
a given ``demo`` config section. See :mod:`pipeline.demo`.
"""

import logging
import time
from pathlib import Path
from typing import Any

from pipeline.config import AoiSpec, DemoConfig, parse_section
from pipeline.errors import ConfigError

log = logging.getLogger("pipeline.demo")


def run(aoi: AoiSpec, cfg: DemoConfig, window_px: int = 1024) -> dict[str, Any]:
    """Generate the demo inputs of ``aoi`` at the paths its definition names.

    Returns:
        Summary dict: change_fraction, n_polygons_t1/t2, classes, seconds.
    Raises:
        ConfigError: the AOI is not marked ``generated: true`` or lacks image/annotation paths.
    """
    from pipeline import demo
    from pipeline.io.demo_io import write_polygons_gpkg, write_rgb_windows

    if not aoi.generated or aoi.images is None or aoi.annotations is None:
        raise ConfigError(
            f"AOI {aoi.name!r} is not a generated demo AOI: set 'generated: true' and give "
            "images.t1/t2 and annotations.t1/t2 paths in its definition, or remove it from "
            "the demo_inputs targets"
        )
    t0 = time.perf_counter()
    clean1, clean2 = demo.city_polygons(cfg)
    frac = demo.change_fraction(clean1, clean2, cfg.size_m**2)
    ann1, ann2 = demo.annotation_polygons(cfg)
    log.info(
        "demo %s: %d/%d polygons, change fraction %.3f (%.1f s)",
        aoi.name,
        len(ann1),
        len(ann2),
        frac,
        time.perf_counter() - t0,
    )
    write_polygons_gpkg(ann1, Path(aoi.annotations.t1))
    write_polygons_gpkg(ann2, Path(aoi.annotations.t2))
    g1, g2 = demo.demo_grids(cfg)
    for date, ann, grid, out in (("t1", ann1, g1, aoi.images.t1), ("t2", ann2, g2, aoi.images.t2)):
        t = time.perf_counter()
        layer = demo.prepare_layer(ann, cfg, date)
        write_rgb_windows(
            Path(out),
            width=grid.width,
            height=grid.height,
            transform=grid.transform,
            crs=grid.crs,
            windows=demo.iter_render(layer, grid, cfg, window_px),
        )
        log.info(
            "wrote %s (%dx%d px, %.1f s)", out, grid.width, grid.height, time.perf_counter() - t
        )
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


if __name__ == "__main__":
    from stages._common import smk_main

    def _main(smk: Any) -> None:
        run(AoiSpec.model_validate(smk.params.aoi), parse_section("demo", smk.params.cfg))

    smk_main(snakemake, _main)  # noqa: F821
