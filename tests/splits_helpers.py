"""Tiny seeded fixtures for the split / assemble / stats / export / STAC tests."""

from __future__ import annotations

import numpy as np
import shapely

PATCH_M = 256.0  # 512 px x 0.5 m
FP_M = 1280.0  # 128 px x 10 m


def lattice(
    nrow: int = 14,
    ncol: int = 14,
    drop: int = 16,
    seed: int = 0,
    x0: float = 650000.0,
    y0: float = 3795000.0,
    n_classes: int = 18,
    shift_m: float = 5.0,
) -> dict[str, np.ndarray]:
    """A demo-like AOI: ``nrow x ncol`` patches minus a corner of ``drop`` (nodata) patches.

    Footprints are 5x the patches, centred then shifted by ``shift_m`` (like snapping to the
    10 m lattice). Class histograms are spatially clustered (one smooth bump per class), so a
    class-blind spatial split would be unbalanced.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:nrow, 0:ncol]
    rows, cols = rows.ravel(), cols.ravel()
    keep = np.ones(len(rows), bool)
    keep[np.argsort(rows + cols, kind="stable")[:drop]] = False
    rows, cols = rows[keep], cols[keep]
    minx = x0 + cols * PATCH_M
    maxy = y0 - rows * PATCH_M
    patches = shapely.box(minx, maxy - PATCH_M, minx + PATCH_M, maxy)
    cx, cy = minx + PATCH_M / 2 + shift_m, maxy - PATCH_M / 2 + shift_m
    fps = shapely.box(cx - FP_M / 2, cy - FP_M / 2, cx + FP_M / 2, cy + FP_M / 2)
    hist = np.zeros((len(rows), n_classes))
    for c in range(n_classes):
        cr, cc = rng.uniform(0, nrow), rng.uniform(0, ncol)
        w = rng.uniform(0.5, 3.0)
        hist[:, c] = w * np.exp(-((rows - cr) ** 2 + (cols - cc) ** 2) / (2 * 3.0**2))
    hist = np.round(hist / hist.sum(axis=1, keepdims=True) * 512 * 512).astype(np.int64)
    ids = np.array([f"demo_r{r:03d}_c{c:03d}" for r, c in zip(rows, cols, strict=True)])
    return {"ids": ids, "rows": rows, "cols": cols, "patches": patches, "fps": fps, "hist": hist}


def class_l1(hist: np.ndarray, split: np.ndarray, name: str) -> float:
    """L1 distance between a split's class distribution and the whole set's."""
    h = hist[split == name].sum(axis=0).astype(float)
    g = hist.sum(axis=0).astype(float)
    return float(np.abs(h / h.sum() - g / g.sum()).sum())


# --------------------------------------------------------------------------- native-layout AOI

HR_PX = 16  # HR patch side (px)
HR_GSD = 2.5  # m -> 40 m patches = 4 grid px
FP_PX = 20  # 5x footprint (px of 10 m)


def make_native_aoi(
    layout: object,
    name: str = "demo",
    city: str = "democity",
    nrow: int = 6,
    ncol: int = 6,
    months: tuple[str, ...] = ("2019-08", "2019-09", "2019-10"),
    seed: int = 0,
    epsg: int = 32649,
    x0: float = 650000.0,
    y0: float = 3795000.0,
    mosaic: bool = True,
    hr_nodata_row: bool = True,
    hr_px: int = HR_PX,
    hr_gsd: float = HR_GSD,
    fp_px: int = FP_PX,
) -> dict[str, object]:
    """Write one AOI's per-AOI inputs of the dataset stages, in the documented layout.

    Writes footprints.parquet (HR CRS = ``epsg``), labels.parquet (``t1_px_<v>`` histograms),
    change.parquet, grid.json, HR / label / change GeoTIFFs and (``mosaic``) the Sentinel
    mosaic through :mod:`pipeline.io.mosaic`. Known values: HR band b of patch k = 10*b + k
    (mod 250) + 1 everywhere except (``hr_nodata_row``) a first row of 0 = no data; S2 band b
    at month t = 0.01*(b+1) + 0.1*t reflectance, S1 = -10 - b dB, except month 0, pixel column
    0, which has no observation (NaN, count 0). Patches with even column index change (the
    top-left quadrant of T2 is relabelled). ``hr_px`` / ``hr_gsd`` / ``fp_px``: patch side,
    its GSD and the footprint side (FUSU's geometry: 512 px at 0.5 m with 128 px footprints).
    """
    import geopandas as gpd
    import pandas as pd
    from affine import Affine

    from pipeline.grid import compute_footprints
    from pipeline.io.geotiff import write_patch_tif
    from pipeline.io.jsonfile import write_json
    from pipeline.io.parquet import write_geoparquet
    from pipeline.sentinel.model import Block, BlockResult

    rng = np.random.default_rng(seed)
    side = hr_px * hr_gsd
    rows, cols = np.mgrid[0:nrow, 0:ncol]
    rows, cols = rows.ravel(), cols.ravel()
    minx = x0 + cols * side
    maxy = y0 - rows * side
    bounds = np.stack([minx, maxy - side, minx + side, maxy], axis=1)
    fps = compute_footprints(bounds, epsg, fp_px, 10.0, 60.0)
    fb = fps.bounds()
    crs = f"EPSG:{epsg}"
    root = layout.root  # type: ignore[attr-defined]
    recs, lab_recs, ch_recs = [], [], []
    for k, (r, c) in enumerate(zip(rows, cols, strict=True)):
        pid = f"{name}_r{r:03d}_c{c:03d}"
        tr = Affine(hr_gsd, 0, minx[k], 0, -hr_gsd, maxy[k])
        paths = {}
        for d in ("t1", "t2"):
            img = np.full((3, hr_px, hr_px), 0, np.uint8)
            for b in range(3):
                img[b] = 10 * b + (k % 250) + 1 + (d == "t2")
            if hr_nodata_row:
                img[:, 0, :] = 0
            p = layout.hr_dir(name, d) / f"{pid}.tif"  # type: ignore[attr-defined]
            write_patch_tif(p, img, tr, crs, 0)
            paths[d] = p.relative_to(root).as_posix()
        l1 = np.repeat(np.repeat(rng.integers(0, 18, (4, 4)), hr_px // 4, 0), hr_px // 4, 1)
        l1 = l1.astype(np.uint8)
        l2 = l1.copy()
        if c % 2 == 0:
            q = hr_px // 2
            l2[:q, :q] = (l2[:q, :q] % 17) + 1
        if hr_nodata_row:
            l1[0], l2[0] = 255, 255
        valid = (l1 != 255) & (l2 != 255) & (l1 != 0) & (l2 != 0)
        bin_ = np.where(valid, (l1 != l2).astype(np.uint8), 255).astype(np.uint8)
        fromto = np.where(valid, l1.astype(np.uint16) * 18 + l2, 65535).astype(np.uint16)
        lab = {"patch_id": pid, "aoi": name, "class_schema": "fusu17"}
        for d, arr in (("t1", l1), ("t2", l2)):
            p = layout.labels_dir(name, d) / f"{pid}.tif"  # type: ignore[attr-defined]
            write_patch_tif(p, arr, tr, crs, 255)
            lab[f"label_{d}"] = p.relative_to(root).as_posix()
            counts = np.bincount(arr.ravel(), minlength=256)
            for v in [*range(18), 255]:
                lab[f"{d}_px_{v}"] = int(counts[v])
        lab_recs.append(lab)
        for kind, arr, nd in (("bin", bin_, 255), ("fromto", fromto, 65535)):
            write_patch_tif(layout.change_dir(name, kind) / f"{pid}.tif", arr, tr, crs, nd)  # type: ignore[attr-defined]
        nvalid = int(valid.sum())
        nchg = int((bin_ == 1).sum())
        ch_recs.append({"patch_id": pid, "aoi": name, "changed_px": nchg, "valid_px": nvalid,
                        "change_fraction": nchg / nvalid if nvalid else float("nan")})
        recs.append({
            "patch_id": pid, "aoi": name, "city": city, "t1": f"{months[0]}-14",
            "t2": f"{months[-1]}-18", "hr_crs": crs, "gsd_m": hr_gsd,
            "px_col0": int(c * hr_px), "px_row0": int(r * hr_px), "size_px": hr_px,
            "hr_t1": paths["t1"], "hr_t2": paths["t2"],
            "nodata_frac_t1": 1 / hr_px, "nodata_frac_t2": 1 / hr_px,
            "fp_col0": int(fps.col0[k]), "fp_row0": int(fps.row0[k]), "fp_size_px": fp_px,
            "patch_off_x_px": float(fps.patch_off_x_px[k]),
            "patch_off_y_px": float(fps.patch_off_y_px[k]),
            "patch_w_px": float(fps.patch_w_px[k]), "patch_h_px": float(fps.patch_h_px[k]),
            "fp_geometry_wkb": shapely.to_wkb(shapely.box(*fb[k])),
        })
    gdf = gpd.GeoDataFrame(pd.DataFrame(recs), geometry=shapely.box(*bounds.T), crs=crs)
    write_geoparquet(gdf, layout.footprints(name))  # type: ignore[attr-defined]
    write_geoparquet(pd.DataFrame(lab_recs), layout.labels_index(name))  # type: ignore[attr-defined]
    write_geoparquet(pd.DataFrame(ch_recs), layout.change_index(name))  # type: ignore[attr-defined]
    write_json(layout.grid(name), {**fps.grid.to_dict(), "rule": "scale", "size_px": fp_px,  # type: ignore[attr-defined]
                                   "scale": 5.0})
    if mosaic:
        from pipeline.io.mosaic import init_mosaic, write_block

        g = fps.grid
        path = layout.mosaic(name)  # type: ignore[attr-defined]
        init_mosaic(path, g, list(months), chunk_px=64, aoi=name)
        for t in range(len(months)):
            res = BlockResult.empty(g.height, g.width)
            for b in range(12):
                res.s2[b] = 0.01 * (b + 1) + 0.1 * t
            for b in range(2):
                res.s1[b] = -10.0 - b
            res.s2_count[:] = 3
            res.s1_count[:] = 2
            if t == 0:
                res.s2[:, :, 0] = np.nan
                res.s1[:, :, 0] = np.nan
                res.s2_count[:, 0] = 0
                res.s1_count[:, 0] = 0
            write_block(path, t, Block(0, 0, g.width, g.height), res)
    return {"grid": fps.grid, "n": len(rows), "months": months}
