"""Stage `tile` (one job per AOI): HR T1/T2 pair -> patch GeoTIFFs + tile index.

Outputs: ``Layout.hr_dir(aoi, "t1"|"t2")/<id>.tif`` and ``Layout.patches(aoi)`` (written last,
atomically). See :func:`pipeline.tiling.tile_aoi` for the algorithm and the index columns.
"""


import datetime as dt
import logging
from pathlib import Path
from typing import Any

from pipeline.config import AoiDates, AoiSpec, TileConfig, parse_section
from pipeline.errors import ConfigError
from pipeline.io import write_geoparquet
from pipeline.layout import Layout
from pipeline.tiling import TileResult, tile_aoi

log = logging.getLogger("pipeline.stages.tile")


def run(aoi: AoiSpec, cfg: TileConfig, layout: Layout, progress: bool = True) -> TileResult:
    """Tile one AOI and write its patches and ``patches.parquet``.

    Raises:
        ConfigError: the AOI is a template without imagery.
        InputError (TilingError): bad or inconsistent imagery (nothing is written then).
    """
    if aoi.template or aoi.images is None:
        raise ConfigError(
            f"AOI {aoi.name!r} is a template without imagery: set 'images' (and 'annotations') "
            "to your own files in its AOI definition and remove 'template: true'"
        )
    hr_parent = layout.hr_dir(aoi.name, "t1").parent
    existed = hr_parent.exists()
    try:
        result = tile_aoi(
            aoi=aoi.name,
            city=aoi.city,
            t1_date=aoi.t1.isoformat(),
            t2_date=aoi.t2.isoformat(),
            image_t1=aoi.images.t1,
            image_t2=aoi.images.t2,
            root=layout.root,
            hr_dir_t1=layout.hr_dir(aoi.name, "t1"),
            hr_dir_t2=layout.hr_dir(aoi.name, "t2"),
            patch_size_px=cfg.patch_size_px,
            stride_px=cfg.stride_px,
            max_nodata_fraction=cfg.max_nodata_fraction,
            resampling=cfg.coregister_resampling,
            progress=progress,
        )
        write_geoparquet(result.index, layout.patches(aoi.name))
    except BaseException:
        # atomic writers already removed their temporaries; drop folders this run created
        if not existed and hr_parent.is_dir() and not any(hr_parent.iterdir()):
            hr_parent.rmdir()
        raise
    log.info(
        "%s: wrote %d patches (T1 + T2) and %s", aoi.name, result.n_kept, layout.patches(aoi.name)
    )
    return result


def aoi_from_params(d: dict[str, Any]) -> AoiSpec:
    """Rebuild the AOI fields the tile stage needs from the rule's narrow ``aoi`` params.

    The Snakefile already validated the full AOI definition; the rule passes only name, city,
    dates, images and template so that unrelated AOI edits do not re-tile.
    """
    images = d.get("images")
    return AoiSpec.model_construct(
        name=str(d["name"]),
        city=str(d["city"]),
        t1=dt.date.fromisoformat(str(d["t1"])),
        t2=dt.date.fromisoformat(str(d["t2"])),
        images=AoiDates.model_validate(images) if images else None,
        template=bool(d.get("template", False)),
    )


def _main(smk: Any) -> None:
    aoi = aoi_from_params(dict(smk.params.aoi))
    cfg = parse_section("tile", dict(smk.params.cfg))
    run(aoi, cfg, Layout(Path(smk.params.root)))


if __name__ == "__main__":
    from stages._common import smk_main

    smk_main(snakemake, _main)  # type: ignore[name-defined]  # noqa: F821
