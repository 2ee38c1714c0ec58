"""Stage ``stats``: dataset index + Sentinel mosaics + HR patches -> ``stats.json``.

See :mod:`pipeline.stats` for what is computed. Before reading anything, every AOI's mosaic
must exist and hold every month of its T1..T2 range, else a DatasetError lists what is missing.
"""


import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.config import AoiSpec
from pipeline.io import write_json
from pipeline.io.dataset_io import read_index_table
from pipeline.io.export import read_rgb
from pipeline.layout import Layout
from pipeline.sources.base import ALL_BANDS
from pipeline.stats import check_sentinel_inputs, compute_stats

log = logging.getLogger("pipeline.stats")


def available_months(layout: Layout, aois: Sequence[str]) -> dict[str, list[str] | None]:
    """{aoi: months of its mosaic, or None if the mosaic is missing/unreadable}."""
    from pipeline.io.mosaic import mosaic_months

    out: dict[str, list[str] | None] = {}
    for a in aois:
        p = layout.mosaic(a)
        try:
            out[a] = mosaic_months(p) if p.exists() else None
        except Exception:  # an unreadable store counts as missing
            out[a] = None
    return out


def run(
    aois: Sequence[AoiSpec], layout: Layout, sentinel: bool = True, progress: bool = True
) -> Path:
    """Compute ``stats.json`` for the dataset under ``layout``.

    Args:
        aois: AOI definitions (their months are the Sentinel months the dataset needs).
        sentinel: False skips the Sentinel statistics (HR-only datasets).

    Raises:
        DatasetError: missing mosaic / months (lists AOIs and months), missing index.
    """
    from pipeline.io.mosaic import read_footprint_cube

    index = read_index_table(layout.index())
    used = sorted(set(index["aoi"].astype(str)))
    specs = {a.name: a for a in aois}
    read_cube = None
    if sentinel:
        expected = {a: specs[a].months for a in used if a in specs}
        check_sentinel_inputs(expected, available_months(layout, list(expected)))

        def read_cube(aoi: str, col0: int, row0: int, size: int) -> dict[str, Any]:
            return read_footprint_cube(layout.mosaic(aoi), col0, row0, size)

    root = layout.root

    @functools.wraps(read_rgb)
    def read_hr(rel: str) -> Any:
        return read_rgb(root / rel)

    wrap = (lambda it: tqdm(it, desc="stats", mininterval=2.0)) if progress else None
    stats = compute_stats(index, read_cube, read_hr, list(ALL_BANDS), progress=wrap)
    write_json(layout.stats(), stats)
    log.info("wrote %s (%d train patches)", layout.stats(), stats["n_patches"]["train"])
    return layout.stats()


if __name__ == "__main__":  # pragma: no cover - run by Snakemake
    from stages._common import smk_main

    def _main(smk: Any) -> None:
        run([AoiSpec.model_validate(a) for a in smk.params.aois], Layout(Path(smk.params.root)))

    smk_main(snakemake, _main)  # noqa: F821
