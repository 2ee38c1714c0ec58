"""Stage ``stac``: dataset index -> self-contained STAC Collection under ``stac/``.

See :mod:`pipeline.stac` for the Items' content.
"""


import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.classes import load_schema
from pipeline.config import AoiSpec
from pipeline.io.dataset_io import read_index_geo
from pipeline.io.export import save_stac
from pipeline.layout import Layout
from pipeline.stac import build_collection

log = logging.getLogger("pipeline.stac")


def run(
    aois: Sequence[AoiSpec], layout: Layout, dataset: str = "dataset", class_schema: str = "fusu17"
) -> Path:
    """Write ``stac/collection.json`` + one item JSON per patch; returns the collection path."""
    index = read_index_geo(layout.index())
    months = {a.name: a.months for a in aois}
    schema = load_schema(class_schema)
    coll = build_collection(
        index, layout.root, months, schema.names, collection_id=dataset,
        description=f"{dataset}: FUSU-style bi-temporal HR land-use change dataset with "
        "monthly Sentinel-2/1 series (one item per patch)", stac_dir=layout.stac_dir(),
    )
    out = save_stac(coll, layout.stac_dir())
    log.info("wrote %s (%d items)", out, len(index))
    return out


if __name__ == "__main__":  # pragma: no cover - run by Snakemake
    from stages._common import smk_main

    def _main(smk: Any) -> None:
        run(
            [AoiSpec.model_validate(a) for a in smk.params.aois],
            Layout(Path(smk.params.root)),
            dataset=smk.params.dataset,
            class_schema=smk.params.class_schema,
        )

    smk_main(snakemake, _main)  # noqa: F821
