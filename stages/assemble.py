"""Stage ``assemble``: per-AOI footprints / labels / change indices -> dataset index + splits.

Writes (see :mod:`pipeline.assemble`, :mod:`pipeline.splits`):
``patches.parquet`` (the dataset index, one row per patch, with ``split``),
``splits/{train,val,test,guard}.txt``, ``splits/change_detection/{train,val,test}.txt``,
``splits/cities/<city>/{train,val,test}.txt``, ``splits/summary.json`` (FUSU Table 11-style
counts) and ``splits/leakage.json``.
"""


import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.assemble import AoiTables, build_index, split_lists
from pipeline.config import AoiSpec, SplitsConfig, parse_section
from pipeline.io import read_geoparquet, read_json, write_bytes_atomic, write_geoparquet, write_json
from pipeline.layout import Layout
from pipeline.splits import achieved_ratios, leakage_report, split_summary

log = logging.getLogger("pipeline.assemble")


def split_list_path(layout: Layout, name: str) -> Path:
    """Path of a split list: ``train`` -> splits/train.txt, ``cd_val`` ->
    splits/change_detection/val.txt, ``<city>/test`` -> splits/cities/<city>/test.txt."""
    d = layout.splits_dir()
    if name.startswith("cd_"):
        return d / "change_detection" / f"{name[3:]}.txt"
    if "/" in name:
        city, s = name.split("/", 1)
        return d / "cities" / city / f"{s}.txt"
    return d / f"{name}.txt"


def leakage_path(layout: Layout) -> Path:
    return layout.splits_dir() / "leakage.json"


def summary_path(layout: Layout) -> Path:
    return layout.splits_dir() / "summary.json"


def _read_aoi(aoi: AoiSpec, layout: Layout) -> AoiTables:
    name = aoi.name
    fp = read_geoparquet(layout.footprints(name))
    labels = read_geoparquet(layout.labels_index(name))
    ch_path = layout.change_index(name)
    change = read_geoparquet(ch_path) if ch_path.is_file() else None
    grid = read_json(layout.grid(name)) if layout.grid(name).is_file() else None
    return AoiTables(
        aoi=name, city=aoi.city, footprints=fp, labels=labels, change=change, grid=grid
    )


def run(aois: Sequence[AoiSpec], cfg: SplitsConfig, layout: Layout) -> Path:
    """Assemble the dataset index of ``aois`` and write it with the split files.

    Raises:
        InputError: a per-AOI index is missing (run its stage first).
        DatasetError: inconsistent indices or splits impossible (see :mod:`pipeline.splits`).
    """
    tables = [_read_aoi(a, layout) for a in aois]
    index, res, patches, fps = build_index(tables, cfg)
    report = leakage_report(res.split, index["city"].to_numpy(), patches, fps, res.info)
    # flat summary keys, handy for the QA report
    report["mode"] = res.info["mode"]
    report["guard"] = res.info["guard"]
    report["dropped_patches"] = report["overall"]["guard_patches"]
    report["pairs"] = [
        {"split_a": k.split("-")[0], "split_b": k.split("-")[1],
         "overlapping_footprints": v["n_leaking"], **v}
        for k, v in report["overall"].items() if isinstance(v, dict)
    ]
    summary = split_summary(res.split, index["city"].to_numpy(), index["changed_px"].to_numpy())
    summary["achieved_ratios"] = achieved_ratios(res.split)
    summary["config"] = res.info
    for name, ids in split_lists(index).items():
        write_bytes_atomic(split_list_path(layout, name), "".join(f"{i}\n" for i in ids).encode())
    write_json(leakage_path(layout), report)
    write_json(summary_path(layout), summary)
    write_geoparquet(index, layout.index())
    log.info(
        "dataset index %s: %d patches, splits %s, achieved %s, guard %d",
        layout.index(), len(index), summary["complete"],
        {k: round(v, 3) for k, v in summary["achieved_ratios"].items()},
        report["dropped_patches"],
    )
    return layout.index()


if __name__ == "__main__":  # pragma: no cover - run by Snakemake
    from stages._common import smk_main

    def _main(smk: Any) -> None:
        run(
            [AoiSpec.model_validate(a) for a in smk.params.aois],
            parse_section("splits", smk.params.cfg),
            Layout(Path(smk.params.root)),
        )

    smk_main(snakemake, _main)  # noqa: F821
