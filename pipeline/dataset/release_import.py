"""Import the FUSU release into the native layout, so the project's loaders, training,
evaluation and export run on FUSU itself::

    .venv/bin/python -m pipeline.dataset.release_import /data/FUSU --dataset fusu \\
        [--results-dir results] [--years A=2018,B=2019,C=2020] [--gsd-m 0.5] [--no-sentinel]

Layouts and naming: :mod:`pipeline.dataset.fusu_release`. What the import writes under
``<results_dir>/<dataset>/``:

* ``patches.parquet``: one row per patch (id ``<city>_r<row>_c<col>``, city = AOI, the
  release name, lattice row / column, split, the HR images and labels **referenced in place**
  by absolute path (nothing is copied), the change mask, class histograms, change counts,
  ``t1`` / ``t2`` = August 2018 / August 2020, ``georeferenced`` = False; geometry = the patch's
  box on the local lattice, no CRS);
* ``aois/<city>/change/bin/<id>.png``: binary change from the two labels by the project's rule
  (:func:`pipeline.hr.change.binary_change`: 1 changed, 0 unchanged, 255 where either date is
  background or no data); a release ``label_bin`` is compared with it, not used
  (``import.json``: ``label_bin_agreement``);
* ``splits/``: the official split (folders of the official layout, or ``train.txt`` /
  ``val.txt`` / ``test.txt`` published with the release; patches in no list are ``guard``),
  else leakage-free block splits on the lattice (``splits`` config section);
* with Sentinel files: the city's Sentinel store (``Layout.mosaic``), the patches' cubes side
  by side (16 per row of 128 px slots; a storage grid, not a map: its CRS is a placeholder
  and the store says ``georeferenced: false``), counts 1 where a value is present (the
  release has no counts), S2 DN scaled to reflectance when they look like DN
  (``import.json``: ``s2_scale``);
* ``stats.json`` (train split) and ``import.json`` (source, layout, options, counts, checks).

Without coordinates nothing georeferenced is possible: no footprint GeoPackage or STAC
collection, no QA map, no fetching of other Sentinel months.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.dataset.assemble import N_CLASSES
from pipeline.dataset.fusu_release import (
    FP_PX,
    OFFICIAL_DIRS,
    PATCH_BOX,
    RELEASE_DIRS,
    SPLITS,
    T1_MONTH,
    T2_MONTH,
    YEARS,
    ReleasePatch,
    assign_lists,
    city_slug,
    collect_city,
    lattice_boxes,
    month_file,
    resolve_months,
    s2_to_reflectance_factor,
    split_cube,
)
from pipeline.errors import DatasetError, PipelineError
from pipeline.layout import Layout

log = logging.getLogger(__name__)

#: Slots per row of an imported city's Sentinel storage grid.
SLOTS_PER_ROW = 16
#: CRS written into the storage grid of an imported (not georeferenced) Sentinel store.
PLACEHOLDER_EPSG = 32650


@dataclass(frozen=True)
class ReleaseImport:
    """What to import and how.

    Attributes:
        source: the release folder (a city folder holding ``im1/``, a folder of city folders,
            or the official layout's folder holding ``train/`` ...).
        city: the city name of a single-city folder (default: the folder's name).
        years: year letter -> year of the Sentinel folders (default :data:`YEARS`).
        gsd_m: HR pixel size (m) for the lattice of the block splits (512 px x ``gsd_m``).
        sentinel: import the Sentinel files when there are any (False: HR only).
        threads: threads reading labels and Sentinel files.
    """

    source: Path
    city: str | None = None
    years: Mapping[str, int] = field(default_factory=lambda: dict(YEARS))
    gsd_m: float = 0.5
    sentinel: bool = True
    threads: int = 4


# --------------------------------------------------------------------------- scan


def scan_release(opts: ReleaseImport) -> tuple[str, list[ReleasePatch], dict[str, list[str]]]:
    """(layout name, patches, published split lists) of the release folder.

    Raises:
        DatasetError: no FUSU layout found, missing files, duplicate patches.
    """
    from pipeline.io.release_files import list_dir, read_id_list, walk_files

    src = opts.source
    dirs, _ = list_dir(src)
    if not dirs:
        raise DatasetError(f"release folder {src} does not exist or is empty: give the folder "
                           "holding im1/ (or train/ for the official code's layout)")
    split_dirs = [s for s in SPLITS if s in dirs and "im1" in list_dir(src / s)[0]]
    default_city = city_slug(opts.city or src.resolve().name)
    patches: list[ReleasePatch] = []
    lists: dict[str, list[str]] = {}
    if split_dirs:
        layout_name = "official"
        for s in split_dirs:
            sub = src / s
            names = {d: list_dir(sub / d)[1] for d in list_dir(sub)[0]}
            times = [(f"Times/{r}" if r else "Times", f) for r, f in walk_files(sub / "Times")]
            patches += collect_city(default_city, s, names, OFFICIAL_DIRS, s, times, opts.years)
    else:
        layout_name = "release"
        cities = [("", default_city)] if "im1" in dirs else [
            (d, city_slug(d)) for d in dirs if "im1" in list_dir(src / d)[0]]
        if not cities:
            raise DatasetError(
                f"{src} holds neither im1/ (the release layout), nor city folders holding im1/, "
                "nor train/ val/ test/ with im1/ (the official code's layout)")
        for rel, city in cities:
            root = src / rel if rel else src
            sub_dirs = list_dir(root)[0]
            names = {d: list_dir(root / d)[1] for d in sub_dirs if d in RELEASE_DIRS.values()}
            sentinel = [(f"{y}/{r}" if r else y, f) for y in sub_dirs if len(y) == 1
                        and y.isalpha() for r, f in walk_files(root / y)]
            patches += collect_city(city, rel, names, RELEASE_DIRS, None, sentinel, opts.years)
            for s in SPLITS:
                for folder in (root, src):
                    if (folder / f"{s}.txt").is_file():
                        lists.setdefault(s, []).extend(
                            f"{city}/{n}" if folder == root else n
                            for n in read_id_list(folder / f"{s}.txt"))
                        break
    from collections import Counter

    dup = sorted(i for i, n in Counter(p.patch_id for p in patches).items() if n > 1)
    if dup:
        raise DatasetError(f"{src}: patch(es) {dup[:5]} appear twice (in two split folders or "
                           "two city folders with one name): fix the release folder")
    return layout_name, patches, lists


# --------------------------------------------------------------------------- per patch


def _labels(src: Path, layout: Layout, p: ReleasePatch) -> dict[str, Any]:
    """Read one patch's labels, write its change mask; its index columns."""
    from pipeline.hr.change import binary_change
    from pipeline.io.geotiff import read_patch
    from pipeline.io.png import write_png

    def label(kind: str) -> np.ndarray:
        f = src / p.files[kind]
        a = read_patch(f, f"{kind} of patch {p.name}", bands=[1]).data
        assert a is not None
        bad = np.setdiff1d(np.unique(a), [*range(N_CLASSES), 255])
        if bad.size:
            raise DatasetError(f"{f}: values {bad[:8].tolist()} are not FUSU classes 0..17 (or "
                               "255 = no data): is it an RGB-coloured label? Use the class-id "
                               "PNGs of the release")
        return a[0]

    l1, l2 = label("label_t1"), label("label_t2")
    if l1.shape != l2.shape:
        raise DatasetError(f"patch {p.name}: T1 label {l1.shape} and T2 label {l2.shape} differ")
    change = binary_change(l1, l2)
    path = layout.change_dir(p.city, "bin") / f"{p.patch_id}.png"
    write_png(path, change)
    rel = path.relative_to(layout.root)
    valid = change != 255
    row: dict[str, Any] = {
        "change_bin": rel.as_posix(),
        "changed_px": int((change == 1).sum()), "valid_px": int(valid.sum()),
        "hr_px": int(l1.shape[0]),
    }
    for date, lab in (("t1", l1), ("t2", l2)):
        h = np.bincount(lab[lab != 255].ravel(), minlength=N_CLASSES)
        row.update({f"hist_{date}_{v}": int(h[v]) for v in range(N_CLASSES)})
    if "label_bin" in p.files:
        lb = read_patch(src / p.files["label_bin"], f"label_bin of {p.name}", bands=[1]).data
        assert lb is not None
        row["label_bin_agree_px"] = int(((lb[0] == 1) == (change == 1))[valid].sum())
    return row


# --------------------------------------------------------------------------- sentinel


@dataclass
class _Arrays:
    s2: np.ndarray
    s2_count: np.ndarray
    s1: np.ndarray
    s1_count: np.ndarray


def _write_city_cubes(src: Path, layout: Layout, city: str, patches: Sequence[ReleasePatch],
                      months: Sequence[str], factor: float, threads: int
                      ) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """The city's storage-grid mosaic (slot k of ``patches`` at row k // 16, column k % 16);
    returns (counts of months read / missing, {patch id: (fp_col0, fp_row0)} of its slot)."""
    from pipeline.grid import AoiGrid
    from pipeline.io.jsonfile import write_json
    from pipeline.io.mosaic import (
        CHUNK_PX,
        consolidate_mosaic,
        finalize_mosaic,
        init_mosaic,
        write_block,
        write_month_product,
    )
    from pipeline.io.raster import read_bands
    from pipeline.parallel import ordered_map
    from pipeline.sentinel.model import Block

    n = len(patches)
    ncols = min(SLOTS_PER_ROW, n)
    nrows = -(-n // ncols)
    grid = AoiGrid(epsg=PLACEHOLDER_EPSG, res_m=10.0, x0=0.0, y0=float(nrows * FP_PX * 10),
                   width=ncols * FP_PX, height=nrows * FP_PX)
    staging = layout.mosaic_staging(city)
    init_mosaic(staging, grid, list(months), chunk_px=CHUNK_PX, aoi=city, overwrite=True)
    counts = {"read": 0, "missing": 0}

    def read(item: tuple[ReleasePatch, int]) -> np.ndarray | None:
        p, t = item
        f = month_file(p, months, t)
        if f is None:
            return None
        a = read_bands(src / f)
        if a.shape[1:] != (FP_PX, FP_PX):
            raise DatasetError(f"{src / f}: a Sentinel month of {a.shape[1]} x {a.shape[2]} px,"
                               f" expected {FP_PX} x {FP_PX}")
        return a

    for t in range(len(months)):
        for r in range(nrows):
            row = patches[r * ncols:(r + 1) * ncols]
            w = ncols * FP_PX
            out = _Arrays(np.full((12, FP_PX, w), np.nan, np.float32),
                          np.zeros((FP_PX, w), np.uint8),
                          np.full((2, FP_PX, w), np.nan, np.float32),
                          np.zeros((FP_PX, w), np.uint8))
            cubes = ordered_map(read, [(p, t) for p in row], threads)
            for k, cube in enumerate(cubes):
                if cube is None:
                    counts["missing"] += 1
                    continue
                counts["read"] += 1
                xs = slice(k * FP_PX, (k + 1) * FP_PX)
                out.s2[:, :, xs], out.s2_count[:, xs], out.s1[:, :, xs], out.s1_count[:, xs] = (
                    split_cube(cube, factor))
            write_block(staging, t, Block(0, r * FP_PX, w, FP_PX), out)
        write_month_product(staging, t, "L2A")
    products = dict.fromkeys(months, "L2A")
    finalize_mosaic(staging, products)
    consolidate_mosaic(staging, layout.mosaic(city), products, extra_attrs={
        "georeferenced": False, "source": "FUSU release import",
        "storage": f"one {FP_PX} px slot per patch, {ncols} per row (patches.parquet fp_col0 "
                   "/ fp_row0); the CRS is a placeholder"})
    write_json(layout.grid(city), {**grid.to_dict(), "georeferenced": False})
    slots = {p.patch_id: (k % ncols * FP_PX, k // ncols * FP_PX) for k, p in enumerate(patches)}
    return counts, slots


# --------------------------------------------------------------------------- driver


def import_release(opts: ReleaseImport, layout: Layout, splits_cfg: Any) -> dict[str, Any]:
    """Import the release at ``opts.source`` into ``layout`` (see the module docstring).

    Returns:
        The import report (also written to ``import.json``).

    Raises:
        DatasetError: layout, naming, label or Sentinel problems (each names the file).
    """
    import geopandas as gpd
    import pandas as pd

    from pipeline.dataset.assemble import split_lists
    from pipeline.dataset.drivers import dataset_stats
    from pipeline.dataset.splits import change_subset, make_splits
    from pipeline.io.atomic import write_lines
    from pipeline.io.geotiff import quiet_rasterio_geotransform_warning
    from pipeline.io.jsonfile import write_json
    from pipeline.io.parquet import write_geoparquet
    from pipeline.parallel import ordered_map

    quiet_rasterio_geotransform_warning()  # release files carry no geotransform
    src = opts.source.resolve()
    layout_name, patches, lists = scan_release(opts)
    log.info("FUSU release %s (%s layout): %d patches in %s", src, layout_name, len(patches),
             sorted({p.city for p in patches}))
    rows = list(ordered_map(lambda p: _labels(src, layout, p), patches, opts.threads))
    index = pd.DataFrame(rows)
    index.insert(0, "patch_id", [p.patch_id for p in patches])
    index["aoi"] = index["city"] = [p.city for p in patches]
    index["name"] = [p.name for p in patches]
    index["row"] = [p.row for p in patches]
    index["col"] = [p.col for p in patches]
    for kind, col in (("t1", "hr_t1"), ("t2", "hr_t2"), ("label_t1", "label_t1"),
                      ("label_t2", "label_t2")):
        index[col] = [str(src / p.files[kind]) for p in patches]
    index["t1"], index["t2"] = T1_MONTH, T2_MONTH
    index["gsd_m"] = float(opts.gsd_m)
    index["georeferenced"] = False
    index["change_fraction"] = index["changed_px"] / index["valid_px"].clip(lower=1)
    boxes, fps = lattice_boxes(index["row"].to_numpy(), index["col"].to_numpy(),
                               512 * float(opts.gsd_m))
    hist = (index[[f"hist_t1_{v}" for v in range(N_CLASSES)]].to_numpy(np.float64)
            + index[[f"hist_t2_{v}" for v in range(N_CLASSES)]].to_numpy(np.float64))
    if layout_name == "official":
        split_src = "official layout folders"
        split = np.array([p.split for p in patches], dtype=object)
    elif lists:
        split_src = "published split lists (" + ", ".join(f"{s}.txt" for s in lists) + ")"
        split = np.array([s or "guard" for s in assign_lists(patches, lists)], dtype=object)
    else:
        split_src = f"block splits on the lattice ({splits_cfg.mode})"
        split = make_splits(index["patch_id"].to_numpy(), index["city"].to_numpy(),
                            index["aoi"].to_numpy(), boxes, fps, hist, splits_cfg).split
    index["split"] = split.astype(str)
    index["change_detection"] = pd.notna(change_subset(split, index["changed_px"].to_numpy()))

    months = resolve_months(patches) if opts.sentinel else []
    sentinel: dict[str, Any] = {"months": months}
    if months:
        from pipeline.io.raster import read_bands

        first = next(f for p in patches for t in range(len(months))
                     if (f := month_file(p, months, t)) is not None)
        factor = s2_to_reflectance_factor(read_bands(src / first)[:12])
        sentinel.update(s2_scale=factor, first_file=first, by_city={})
        slots: dict[str, tuple[int, int]] = {}
        for city in sorted({p.city for p in patches}):
            mine = [p for p in patches if p.city == city]
            sentinel["by_city"][city], placed = _write_city_cubes(
                src, layout, city, mine, months, factor, opts.threads)
            slots.update(placed)
        index["fp_col0"] = [slots[p.patch_id][0] for p in patches]
        index["fp_row0"] = [slots[p.patch_id][1] for p in patches]
        index["fp_size_px"] = FP_PX
        (index["patch_off_x_px"], index["patch_off_y_px"], index["patch_w_px"],
         index["patch_h_px"]) = PATCH_BOX
    gdf = gpd.GeoDataFrame(index, geometry=list(boxes), crs=None)
    for name, ids in split_lists(gdf).items():
        write_lines(layout.split_list(name), list(ids))
    write_geoparquet(gdf, layout.index())
    dataset_stats([], layout, sentinel=bool(months), progress=False)
    agree = None
    if "label_bin_agree_px" in index.columns:
        agree = float(index["label_bin_agree_px"].sum() / max(1, int(index["valid_px"].sum())))
    report = {
        "source": str(src), "layout": layout_name, "patches": len(patches),
        "cities": {c: int((index["city"] == c).sum()) for c in sorted(set(index["city"]))},
        "splits": {s: int((index["split"] == s).sum()) for s in (*SPLITS, "guard")},
        "split_source": split_src, "sentinel": sentinel,
        "label_bin_agreement": agree,
        "options": {**asdict(opts), "source": str(opts.source), "years": dict(opts.years)},
        "not_available": "coordinates: no footprint GeoPackage, STAC collection, QA map or "
                         "Sentinel refetch for imported patches",
    }
    write_json(layout.root / "import.json", report)
    return report


def _years(text: str) -> dict[str, int]:
    out = dict(YEARS)
    for part in filter(None, text.split(",")):
        k, _, v = part.partition("=")
        out[k.strip().upper()] = int(v)
    return out


def import_main(argv: list[str] | None = None) -> int:
    from pipeline.config import load_config
    from pipeline.logs import setup_logging

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path, help="the release folder")
    ap.add_argument("--dataset", default="fusu", help="dataset name (results/<dataset>)")
    ap.add_argument("--results-dir", default="results")
    ap.add_argument("--city", default=None, help="city name of a single-city folder")
    ap.add_argument("--years", default="", help="year letters, e.g. A=2018,B=2019,C=2020")
    ap.add_argument("--gsd-m", type=float, default=0.5, help="HR pixel size for the lattice")
    ap.add_argument("--no-sentinel", action="store_true", help="import the HR part only")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--config", default="{}", help="workflow config overrides (JSON): the "
                    "'splits' section decides block splits")
    args = ap.parse_args(argv)
    setup_logging(None)
    import json

    try:
        cfg = load_config(json.loads(args.config), "--config")
        opts = ReleaseImport(args.source, args.city, _years(args.years), args.gsd_m,
                             not args.no_sentinel, args.threads)
        report = import_release(opts, Layout.of(args.results_dir, args.dataset), cfg.splits)
    except PipelineError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: report[k] for k in ("patches", "cities", "splits", "split_source")}))
    return 0


if __name__ == "__main__":
    sys.exit(import_main())
