"""Merge the per-AOI indices into the dataset index and assign splits (pure functions).

Inputs per AOI (read by :mod:`stages.assemble`):

* ``aois/<aoi>/footprints.parquet``: GeoDataFrame in the AOI's HR CRS, the tile index columns
  plus ``fp_col0, fp_row0, fp_size_px, patch_off_x_px, ...`` and ``fp_geometry_wkb`` (footprint
  polygon in the AOI grid CRS, WKB);
* ``aois/<aoi>/labels.parquet``: ``patch_id``, ``label_t1``, ``label_t2`` and per-class pixel
  counts ``t1_px_<v>`` / ``t2_px_<v>`` (v = 0..17 and 255 = no data);
* ``aois/<aoi>/change.parquet``: ``patch_id``, ``changed_px``, ``valid_px``,
  ``change_fraction`` (optional: without it every patch has 0 changed pixels);
* ``aois/<aoi>/grid.json``: the AOI grid (its ``epsg`` is the footprint CRS).

Output: one GeoDataFrame, one row per patch (``patches.parquet``). AOIs may lie in different
CRSs, so the ``geometry`` column is the HR patch polygon in **EPSG:4326** (lon/lat degrees;
corners reprojected, edges straight: sub-millimetre error for patch-sized polygons); the
exact polygon is kept as ``hr_geometry_wkb`` in the patch's own ``hr_crs``, and the footprint
as ``fp_geometry_wkb`` in ``grid_crs`` (the AOI's 10 m UTM grid) with its window
``fp_col0, fp_row0, fp_size_px``.
Class histograms are the columns ``hist_t1_<v>`` / ``hist_t2_<v>`` (v = 0..n-1 class pixel
counts) plus ``nodata_px_t1`` / ``nodata_px_t2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shapely

from pipeline.dataset.splits import SplitResult, change_subset, make_splits
from pipeline.errors import DatasetError

INDEX_CRS = "EPSG:4326"
N_CLASSES = 18
FOOTPRINT_COLUMNS = (
    "patch_id", "hr_crs", "fp_col0", "fp_row0", "fp_size_px", "fp_geometry_wkb",
)


@dataclass
class AoiTables:
    """The per-AOI inputs of :func:`build_index`.

    Attributes:
        aoi, city: names.
        footprints: GeoDataFrame (HR CRS) of ``footprints.parquet``.
        labels: DataFrame of ``labels.parquet``.
        change: DataFrame of ``change.parquet`` or None.
        grid: ``grid.json`` dict (needs ``epsg``) or None (then ``grid_crs`` = the HR CRS).
    """

    aoi: str
    city: str
    footprints: Any
    labels: pd.DataFrame
    change: pd.DataFrame | None
    grid: dict[str, Any] | None


def _hist_columns(df: pd.DataFrame, date: str, n_classes: int) -> np.ndarray:
    cols = [f"{date}_px_{v}" for v in range(n_classes)]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(missing)
    return df[cols].to_numpy(dtype=np.int64)


def merge_aoi(t: AoiTables, n_classes: int = N_CLASSES) -> Any:
    """One AOI's rows of the dataset index (GeoDataFrame in EPSG:4326, no split yet).

    Raises:
        DatasetError: missing columns, or patches without labels (names the AOI and the fix).
    """
    import geopandas as gpd

    fp = t.footprints
    missing = [c for c in FOOTPRINT_COLUMNS if c not in fp.columns]
    if missing:
        raise DatasetError(
            f"AOI {t.aoi!r}: footprints.parquet lacks columns {missing}: rerun the footprints "
            "stage for this AOI"
        )
    if fp.crs is None:
        raise DatasetError(
            f"AOI {t.aoi!r}: footprints.parquet has no CRS: rerun the footprints stage"
        )
    lab = t.labels
    if "patch_id" not in lab.columns:
        raise DatasetError(
            f"AOI {t.aoi!r}: labels.parquet lacks 'patch_id': rerun the labels stage"
        )
    try:
        h1 = _hist_columns(lab, "t1", n_classes)
        h2 = _hist_columns(lab, "t2", n_classes)
    except KeyError as exc:
        raise DatasetError(
            f"AOI {t.aoi!r}: labels.parquet lacks histogram columns {exc.args[0][:3]}...: rerun "
            "the labels stage for this AOI"
        ) from None
    hist = pd.DataFrame(
        np.concatenate([h1, h2], axis=1),
        columns=[f"hist_{d}_{v}" for d in ("t1", "t2") for v in range(n_classes)],
    )
    hist["patch_id"] = lab["patch_id"].astype(str).to_numpy()
    for d in ("t1", "t2"):
        nd = f"{d}_px_255"
        hist[f"nodata_px_{d}"] = lab[nd].to_numpy(np.int64) if nd in lab.columns else 0
        hist[f"label_{d}"] = (
            lab[f"label_{d}"].astype(str).to_numpy() if f"label_{d}" in lab.columns
            else [f"aois/{t.aoi}/labels/{d}/{p}.tif" for p in hist["patch_id"]]
        )
    base = pd.DataFrame(fp.drop(columns=fp.geometry.name))
    base["patch_id"] = base["patch_id"].astype(str)
    no_label = sorted(set(base["patch_id"]) - set(hist["patch_id"]))
    if no_label:
        raise DatasetError(
            f"AOI {t.aoi!r}: {len(no_label)} patch(es) have no labels (e.g. {no_label[:3]}): "
            "rerun the labels stage for this AOI after the tile stage"
        )
    drop_dupes = [c for c in hist.columns if c in base.columns and c != "patch_id"]
    df = base.merge(hist.drop(columns=drop_dupes), on="patch_id", how="left", validate="1:1")
    if t.change is not None and len(t.change):
        ch = t.change.copy()
        ch["patch_id"] = ch["patch_id"].astype(str)
        keep = [c for c in ("patch_id", "changed_px", "valid_px", "change_fraction",
                            "change_bin", "change_fromto") if c in ch.columns]
        df = df.drop(columns=[c for c in keep if c != "patch_id" and c in df.columns])
        df = df.merge(ch[keep], on="patch_id", how="left", validate="1:1")
    for c, default in (("changed_px", 0), ("valid_px", 0)):
        df[c] = df[c].fillna(default).astype(np.int64) if c in df.columns else default
    if "change_fraction" not in df.columns:
        df["change_fraction"] = np.where(
            df["valid_px"] > 0, df["changed_px"] / df["valid_px"].clip(1), np.nan
        )
    for kind in ("bin", "fromto"):
        col = f"change_{kind}"
        paths = [f"aois/{t.aoi}/change/{kind}/{p}.tif" for p in df["patch_id"]]
        if col in df.columns:
            df[col] = df[col].fillna(pd.Series(paths, index=df.index))
        else:
            df[col] = paths
    df["aoi"] = t.aoi
    df["city"] = t.city
    hr_geoms = fp.geometry.to_numpy()
    df["hr_geometry_wkb"] = shapely.to_wkb(hr_geoms)
    df["grid_crs"] = f"EPSG:{int(t.grid['epsg'])}" if t.grid and "epsg" in t.grid else str(fp.crs)
    hr = gpd.GeoSeries(hr_geoms, crs=fp.crs)
    return gpd.GeoDataFrame(df, geometry=hr.to_crs(INDEX_CRS).to_numpy(), crs=INDEX_CRS)


def metric_geometries(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """Patch and footprint polygons in one metric CRS per city (the city's UTM zone).

    Args:
        index: GeoDataFrame from :func:`merge_aoi` (``hr_geometry_wkb`` + ``hr_crs``,
            ``fp_geometry_wkb`` + ``grid_crs``, ``city``).

    Returns:
        (N,) patch polygons and (N,) footprint polygons; within a city both share the UTM CRS
        estimated from the city's EPSG:4326 geometry.
    """
    import geopandas as gpd

    n = len(index)
    patches = np.empty(n, dtype=object)
    fps = np.empty(n, dtype=object)
    cities = index["city"].to_numpy()
    for city in sorted(set(cities.tolist())):
        m = cities == city
        crs = gpd.GeoSeries(index.geometry.to_numpy()[m], crs=index.crs).estimate_utm_crs()
        sub = index[m]
        for (hr_crs, grid_crs), grp in sub.groupby(["hr_crs", "grid_crs"], sort=True):
            rows = np.flatnonzero(m)[np.isin(sub.index.to_numpy(), grp.index.to_numpy())]
            hp = gpd.GeoSeries(shapely.from_wkb(grp["hr_geometry_wkb"].to_numpy()), crs=hr_crs)
            fg = gpd.GeoSeries(shapely.from_wkb(grp["fp_geometry_wkb"].to_numpy()), crs=grid_crs)
            patches[rows] = hp.to_crs(crs).to_numpy()
            fps[rows] = fg.to_crs(crs).to_numpy()
    return patches, fps


def build_index(
    tables: Sequence[AoiTables], splits_cfg: Any, n_classes: int = N_CLASSES
) -> tuple[Any, SplitResult, np.ndarray, np.ndarray]:
    """Merge the AOIs, assign splits and the change-detection subset.

    Returns:
        (index GeoDataFrame with ``split``, ``block``, ``change_detection`` (bool) columns,
        :class:`SplitResult`, metric patch polygons, metric footprint polygons).

    Raises:
        DatasetError: no AOI/patch, duplicate patch ids, or the errors of :func:`merge_aoi` /
            :func:`pipeline.dataset.splits.make_splits`.
    """
    import geopandas as gpd

    if not tables:
        raise DatasetError("no AOI to assemble: list AOI definitions under 'aois' in the config")
    frames = [merge_aoi(t, n_classes) for t in tables]
    empty = [t.aoi for t, f in zip(tables, frames, strict=True) if len(f) == 0]
    if len(empty) == len(frames):
        raise DatasetError(
            f"AOI(s) {empty} have no patches: check the HR images and tile.max_nodata_fraction"
        )
    index = gpd.GeoDataFrame(pd.concat([f for f in frames if len(f)], ignore_index=True),
                             geometry="geometry", crs=INDEX_CRS)
    dup = index["patch_id"][index["patch_id"].duplicated()].unique().tolist()
    if dup:
        raise DatasetError(
            f"duplicate patch ids across AOIs {dup[:5]}: AOI names must be unique (patch ids are "
            "'<aoi>_r<row>_c<col>')"
        )
    index = index.sort_values(["city", "aoi", "patch_id"], kind="stable").reset_index(drop=True)
    patches, fps = metric_geometries(index)
    hist = (
        index[[f"hist_t1_{v}" for v in range(n_classes)]].to_numpy(np.float64)
        + index[[f"hist_t2_{v}" for v in range(n_classes)]].to_numpy(np.float64)
    )
    res = make_splits(
        index["patch_id"].to_numpy(), index["city"].to_numpy(), index["aoi"].to_numpy(),
        patches, fps, hist, splits_cfg,
    )
    index["split"] = res.split.astype(str)
    index["block"] = res.block
    index["change_detection"] = pd.notna(change_subset(res.split, index["changed_px"].to_numpy()))
    return index, res, patches, fps


def split_lists(index: pd.DataFrame) -> dict[str, list[str]]:
    """Patch id lists: ``train``/``val``/``test``/``guard``, ``cd_<split>`` (change-detection
    subset) and ``<city>/<split>`` per city; ids sorted."""
    out: dict[str, list[str]] = {}
    for s in ("train", "val", "test", "guard"):
        out[s] = sorted(index.loc[index["split"] == s, "patch_id"].tolist())
    for s in ("train", "val", "test"):
        m = (index["split"] == s) & index["change_detection"].astype(bool)
        out[f"cd_{s}"] = sorted(index.loc[m, "patch_id"].tolist())
    for city, grp in index.groupby("city", sort=True):
        for s in ("train", "val", "test"):
            out[f"{city}/{s}"] = sorted(grp.loc[grp["split"] == s, "patch_id"].tolist())
    return out
