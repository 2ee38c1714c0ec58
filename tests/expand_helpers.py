"""Tiny self-made fixtures in each layout the expansion adapters read (seeded, a few KB)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

#: Inside the scene extent of tests.sentinel_helpers (EPSG:32649, x 649800..651000,
#: y 3794040..3795240), so the local-source archive covers every footprint.
E2E_CRS = "EPSG:32649"
E2E_PAIRS = {
    # id: (x0, y0, t1, t2)  (2 m GSD, 20 x 20 px = 40 m patches -> 20 px footprints)
    "p1": (650300.0, 3794700.0, "2020-03-02", "2020-03-25"),  # shorter than a month
    "p2": (650520.0, 3794640.0, "2020-02-10", "2020-03-28"),
}


def write_tif(path: Path, crs: str | None, x0: float, y0: float, res: float, w: int, h: int,
              count: int = 3, value: int | np.ndarray = 7, dtype: str = "uint8") -> Path:
    """A small GeoTIFF (or a non-georeferenced one with ``crs=None``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kw = {"driver": "GTiff", "width": w, "height": h, "count": count, "dtype": dtype}
    if crs is not None:
        kw.update(crs=crs, transform=Affine(res, 0.0, x0, 0.0, -res, y0))
    data = np.broadcast_to(np.asarray(value, dtype=dtype), (count, h, w))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **kw) as dst:
            dst.write(data)
    return path


def write_png(path: Path, w: int = 8, h: int = 8, count: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="PNG", width=w, height=h, count=count,
                           dtype="uint8") as dst:
            dst.write(np.zeros((count, h, w), np.uint8))
    return path


def make_pairs(root: Path, pairs: dict | None = None, crs: str = E2E_CRS, res: float = 2.0,
               size: int = 20, dates: str = "csv") -> Path:
    """``root/t1|t2|label/<id>.tif`` + dates.csv (or dates.json with ``dates='json'``)."""
    pairs = pairs or E2E_PAIRS
    for sid, (x0, y0, *_rest) in pairs.items():
        write_tif(root / "t1" / f"{sid}.tif", crs, x0, y0, res, size, size)
        write_tif(root / "t2" / f"{sid}.tif", crs, x0 + 1.0, y0, res, size, size)
        write_tif(root / "label" / f"{sid}.tif", crs, x0, y0, res, size, size, count=1, value=1)
    if dates == "csv":
        lines = ["id,t1,t2"] + [f"{k},{v[2]},{v[3]}" for k, v in pairs.items()]
        (root / "dates.csv").write_text("\n".join(lines) + "\n")
    elif dates == "json":
        (root / "dates.json").write_text(json.dumps({k: {"t1": v[2], "t2": v[3]}
                                                     for k, v in pairs.items()}))
    return root


def make_oscd(root: Path, label_values: tuple[int, ...] = (1, 2)) -> Path:
    """Two OSCD cities (10 m, 12 x 10 px, bands B02/B03/B08 + a 60 m B01), dates.txt, cm/."""
    cities = {"abudhabi": ("EPSG:32640", 230000.0, 2700000.0, "20160120", "20180328"),
              "lasvegas": ("EPSG:32611", 660000.0, 4000000.0, "20150707", "20170917")}
    for city, (crs, x0, y0, d1, d2) in cities.items():
        c = root / city
        for k in (1, 2):
            for b in ("B02", "B03", "B08"):
                write_tif(c / f"imgs_{k}" / f"S2A_{city}_{b}.tif", crs, x0, y0, 10.0, 12, 10,
                          count=1, dtype="uint16", value=1000)
            write_tif(c / f"imgs_{k}" / f"S2A_{city}_B01.tif", crs, x0, y0, 60.0, 2, 2,
                      count=1, dtype="uint16", value=1000)
        (c / "dates.txt").write_text(f"date_1: {d1}\ndate_2: {d2}\n")
        lab = np.full((1, 10, 12), label_values[0], np.uint8)
        lab[0, :3, :4] = label_values[-1]
        write_tif(c / "cm" / f"{city}-cm.tif", crs, x0, y0, 10.0, 12, 10, count=1, value=lab)
    return root


def make_spacenet7(root: Path, months: tuple[str, ...] = ("2018_01", "2018_02", "2019_06")
                   ) -> Path:
    """One SpaceNet 7 AOI (EPSG:3857 mosaics, 16 x 16 px at ~4.78 m) with building labels."""
    aoi = "L15-0331E-1257N_1327_3160_13"
    d = root / "train" / aoi
    x0, y0 = 13412000.0, 3580000.0  # Web Mercator, ~120.5 E, 30.5 N
    for m in months:
        stem = f"global_monthly_{m}_mosaic_{aoi}"
        write_tif(d / "images" / f"{stem}.tif", "EPSG:3857", x0, y0, 4.777, 16, 16, count=4)
        (d / "labels").mkdir(parents=True, exist_ok=True)
        (d / "labels" / f"{stem}_Buildings.geojson").write_text(json.dumps(
            {"type": "FeatureCollection", "features": []}))
    return root


def make_levir(root: Path) -> Path:
    """LEVIR-CD style A/B/label PNG chips (no georeferencing)."""
    for sub in ("A", "B", "label"):
        write_png(root / sub / "train_1.png", count=1 if sub == "label" else 3)
    return root


def make_dynamicearthnet(root: Path, months: tuple[str, ...] = ("2018-01", "2018-02", "2019-12"),
                         size: int = 32, e2e: bool = False) -> Path:
    """Two DynamicEarthNet cubes in the release layout: ``planet/<zone>/<tile>/<cube>/PF-SR/
    <YYYY-MM-DD>.tif`` (4 bands B, G, R, NIR, uint16, 3 m, UTM), ``labels/<cube>_<zone>/Labels/
    Raster/<tile name>/<tile name>-YYYY_MM_01.tif`` (7 one-hot uint8 bands, 255 = the class)
    and ``dynnet_training_splits/{train,val,test}.txt`` with the authors' cube paths
    (``/reprocess-cropped/UTM-24000/...``). The second cube's label folder uses the hyphen the
    mediatum release has where the split files have an underscore. ``e2e``: both cubes inside
    the scene extent of tests.sentinel_helpers (EPSG:32649), so a local archive covers them."""
    cubes = {"1330_3107_13": ("10N", "26E-183N", "EPSG:32610", 500000.0, 4400000.0,
                              "10N-121W-39N-L3H-SR", "train", "_"),
             "2196_3885_13": ("17N", "9E-42N", "EPSG:32617", 300000.0, 1000000.0,
                              "17N-83W-9N-L3H-SR", "test", "-")}
    if e2e:
        cubes = {"1330_3107_13": ("49N", "9E-42N", E2E_CRS, 650100.0, 3794900.0,
                                  "49N-112E-34N-L3H-SR", "train", "_"),
                 "2196_3885_13": ("49N", "9E-43N", E2E_CRS, 650500.0, 3794600.0,
                                  "49N-112E-34N-L3H-SR", "test", "-")}
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for cid, (zone, tile, crs, x0, y0, tname, split, sep) in cubes.items():
        pf = root / "planet" / zone / tile / cid / "PF-SR"
        for k, m in enumerate(months):
            for day in ("01", "15"):
                # textured (a constant image has no variance for the HR branch's batch norm)
                rng = np.random.default_rng([int(cid.split("_")[0]), k, int(day)])
                img = (1200 + 300 * rng.standard_normal((4, size, size))).astype("uint16")
                write_tif(pf / f"{m}-{day}.tif", crs, x0, y0, 3.0, size, size, count=4,
                          dtype="uint16", value=img)
            lab = np.zeros((7, size, size), np.uint8)
            lab[1] = 255  # agriculture ...
            if m != months[0]:
                lab[1, : size // 4] = 0
                lab[0, : size // 4] = 255  # ... turned impervious in the north
            d = root / "labels" / f"{cid}{sep}{zone}" / "Labels" / "Raster" / tname
            write_tif(d / f"{tname}-{m.replace('-', '_')}_01.tif", crs, x0, y0, 3.0, size,
                      size, count=7, value=lab)
            label_rel = (f"/labels/{cid}_{zone}/Labels/Raster/{tname}/"
                         f"{tname}-{m.replace('-', '_')}_01.tif")
            lines[split].append(f"/reprocess-cropped/UTM-24000/{zone}/{tile}/{cid}/PF-SR "
                                f"{label_rel} {m}")
    sd = root / "dynnet_training_splits"
    sd.mkdir(parents=True, exist_ok=True)
    for split, ls in lines.items():
        (sd / f"{split}.txt").write_text("\n".join(ls) + ("\n" if ls else ""))
    return root


def make_xbd(root: Path, size: int = 64, lon0: float = -95.5, lat0: float = 29.8,
             dates: tuple[str, str] = ("2017-07-01T16:30:11.000Z",
                                       "2017-08-31T17:38:50.685Z")) -> Path:
    """Two xBD pairs in the release layout (``train/images/<disaster>_<id>_{pre,post}_
    disaster.png``, ``train/labels/<same>.json``): label JSONs with ``features.lng_lat`` and
    ``features.xy`` building polygons (WKT, paired by ``uid``) and the release's ``metadata``
    keys; the second pair has no building (cannot be placed). Pixel -> lon/lat: lon = lon0 +
    x * 1e-5, lat = lat0 - y * 1e-5 (the release's Houston by default)."""
    for split, stem, buildings in (("train", "hurricane-harvey_00000001",
                                    [(5, 5, 20, 18, "no-damage"), (30, 40, 50, 60, "destroyed"),
                                     (40, 2, 60, 12, "un-classified")]),
                                   ("tier3", "hurricane-harvey_00000002", [])):
        for when, date in (("pre", dates[0]), ("post", dates[1])):
            write_png(root / split / "images" / f"{stem}_{when}_disaster.png", size, size)
            xy, ll = [], []
            for k, (x0, y0, x1, y1, sub) in enumerate(buildings):
                ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
                props = {"feature_type": "building", "uid": f"u-{k}"}
                if when == "post":
                    props["subtype"] = sub
                xy.append({"properties": props, "wkt": "POLYGON ((" + ", ".join(
                    f"{x} {y}" for x, y in ring) + "))"})
                ll.append({"properties": props, "wkt": "POLYGON ((" + ", ".join(
                    f"{lon0 + x * 1e-5} {lat0 - y * 1e-5}" for x, y in ring) + "))"})
            doc = {"features": {"lng_lat": ll, "xy": xy}, "metadata": {
                "sensor": "GEOEYE01", "provider_asset_type": "GEOEYE01", "gsd": 1.24,
                "capture_date": date, "off_nadir_angle": 20.1, "pan_resolution": 0.5,
                "sun_azimuth": 140.0, "sun_elevation": 60.0, "target_azimuth": 30.0,
                "disaster": "hurricane-harvey", "disaster_type": "flooding",
                "catalog_id": "1050010", "original_width": size, "original_height": size,
                "width": size, "height": size, "id": f"{stem}-{when}",
                "img_name": f"{stem}_{when}_disaster.png"}}
            p = root / split / "labels" / f"{stem}_{when}_disaster.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(doc))
    return root
