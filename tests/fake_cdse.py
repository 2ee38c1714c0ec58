"""A loopback Copernicus Data Space Ecosystem: moto's S3 server (the real S3 protocol, read by
GDAL's ``/vsis3/``) holding the ``eodata`` bucket, and the scenes of a test archive re-laid as
CDSE serves them: JPEG2000 band files inside SAFE product paths, STAC items shaped exactly like
the recorded real CDSE items (``tests/data/stac_real/cdse-sentinel-2-*-item.json``, which are
the templates: every field they carry is kept, the acquisition's own values replace theirs).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io.scenes import L1C_FILE_BANDS, L2A_FILE_BANDS, SCL_FILE

DATA = Path(__file__).resolve().parent / "data" / "stac_real"
BUCKET = "eodata"
#: the keys every moto request is signed with (moto accepts any; GDAL needs some)
KEY_ID, SECRET = "cdse-test-key", "cdse-test-secret"


def clear_gdal_network_cache() -> None:
    """Empty GDAL's per-process cache of network reads (``/vsicurl/``, ``/vsis3/``:
    ``VSICurlClearCache``, which rasterio does not expose; called on rasterio's own libgdal)."""
    import ctypes

    import rasterio

    libs = Path(rasterio.__file__).resolve().parent.parent / "rasterio.libs"
    found = sorted(libs.glob("libgdal*.so*"))
    if not found:  # a rasterio linked against a system GDAL: that library is already loaded
        ctypes.CDLL(None).VSICurlClearCache()
        return
    ctypes.CDLL(str(found[0])).VSICurlClearCache()


class FakeCdseS3:
    """moto's S3 server on 127.0.0.1 (random port) with an ``eodata`` bucket."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def __enter__(self) -> FakeCdseS3:
        import boto3

        # GDAL caches /vsis3/ reads per bucket and key for the life of the process: a test on
        # the same worker would otherwise be answered from an earlier fake's bytes
        clear_gdal_network_cache()
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                   aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
        self.client.create_bucket(Bucket=BUCKET)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def put(self, key: str, path: Path) -> str:
        self.client.upload_file(str(path), BUCKET, key)
        return f"s3://{BUCKET}/{key}"


def _to_jp2(src: Path, dst: Path, add_dn: int = 0) -> dict[str, Any]:
    """Lossless JPEG2000 copy of a band COG (as ESA writes them: no nodata tag), ``add_dn``
    added to its valid (non-zero) DNs, and the ``proj:`` / ``gsd`` fields of its asset."""
    import rasterio

    with rasterio.open(src) as s:
        a = s.read(1)
        if add_dn:
            a = np.where(a > 0, a.astype(np.int64) + add_dn, 0).astype(a.dtype)
        prof = {"driver": "JP2OpenJPEG", "width": s.width, "height": s.height, "count": 1,
                "dtype": a.dtype.name, "crs": s.crs, "transform": s.transform}
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", QUALITY=100, REVERSIBLE="YES", **prof) as d:
        d.write(a, 1)
    t = prof["transform"]
    return {"gsd": round(t.a), "proj:code": str(prof["crs"]),
            "proj:shape": [s.height, s.width],
            "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f]}


def cdse_items(catalog: Path, s3: FakeCdseS3, work: Path, file_url: Callable[[str], str],
               baseline: str = "05.10") -> list[dict[str, Any]]:
    """The S2 items of a static test catalogue (Earth Search layout, written by
    :func:`pipeline.io.stac_catalog.write_scene_catalog`) as CDSE items over ``s3``; the S1
    items are kept as they are (CDSE has no calibrated S1), their files at ``file_url(path)``
    (the loopback STAC API's file server).

    ``baseline``: the processing baseline the items state. From 04.00 on, ESA's files carry the
    +1000 DN offset and the assets state ``raster:offset: -0.1``: the JP2s get +1000 on every
    valid DN of a reflectance band (the archive's files hold harmonised DNs), so only a reader
    that removes exactly the stated offset gets the archive's reflectances back."""
    import pystac

    from pipeline.sentinel.sources.stac_profiles import PROFILES

    es = PROFILES["earth-search"]
    cdse = PROFILES["cdse"]
    templates = {"L2A": json.loads((DATA / "cdse-sentinel-2-l2a-item.json").read_text()),
                 "L1C": json.loads((DATA / "cdse-sentinel-2-l1c-item.json").read_text())}
    out: list[dict[str, Any]] = []
    for item in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True):
        d = item.to_dict(include_self_link=False)
        level = {"sentinel-2-l2a": "L2A", "sentinel-2-l1c": "L1C"}.get(item.collection_id or "")
        if level is None:
            d["collection"] = item.collection_id
            for k, a in item.assets.items():
                d["assets"][k]["href"] = file_url(a.get_absolute_href() or a.href)
            out.append(d)
            continue
        props = d["properties"]
        tpl = copy.deepcopy(templates[level])
        tile = props["grid:code"].removeprefix("MGRS-")
        stamp = props["datetime"][:19].replace("-", "").replace(":", "")
        sat = "S2A" if props.get("platform", "sentinel-2a").endswith("a") else "S2B"
        pid = f"{sat}_MSI{level}_{stamp}_N{baseline.replace('.', '')}_R062_T{tile}_{stamp}"
        # the same acquisition processed to L1C and L2A at different times: the ids differ
        pid += "1" if level == "L1C" else "2"
        # from baseline 04.00 ESA's DNs carry +1000; the archive's may already (its items then
        # state baseline 04.00 without earthsearch:boa_offset_applied)
        has = 1000 if (float(props["s2:processing_baseline"]) >= 4.0
                       and not props.get("earthsearch:boa_offset_applied")) else 0
        add_dn = (1000 if float(baseline) >= 4.0 else 0) - has
        if add_dn < 0:
            raise ValueError(f"{item.id}: its DNs carry the offset; use a baseline >= 04.00")
        tpl.update(id=pid, collection=f"sentinel-2-{level.lower()}", bbox=d["bbox"],
                   geometry=d["geometry"])
        tp = tpl["properties"]
        tp.update(datetime=props["datetime"], start_datetime=props["datetime"],
                  end_datetime=props["datetime"], platform=props.get("platform", "sentinel-2a"))
        tp["grid:code"] = f"MGRS-{tile}"
        tp["processing:version"] = baseline
        tp["eopf:datatake_id"] = f"G{sat}_{stamp}_000000_N{baseline}"
        for k in ("view:sun_azimuth", "view:sun_elevation", "eo:cloud_cover"):
            if k in props:
                tp[k] = props[k]
        safe = f"Sentinel-2/MSI/{level}/{stamp[:4]}/{stamp[4:6]}/{stamp[6:8]}/{pid}.SAFE"
        assets: dict[str, Any] = {}
        bands = (*L2A_FILE_BANDS, SCL_FILE) if level == "L2A" else L1C_FILE_BANDS
        keys = cdse.keys(level)
        for band in bands:
            es_key = es.keys(level)[band]
            if es_key not in item.assets:
                continue
            src = Path(item.assets[es_key].get_absolute_href() or "")
            asset = copy.deepcopy(tpl["assets"][keys[band]])
            asset.pop("alternate", None)
            res = keys[band].rsplit("_", 1)[-1] if level == "L2A" else ""
            rel = (f"{safe}/GRANULE/{level}_T{tile}/IMG_DATA/"
                   + (f"R{res}/T{tile}_{stamp}_{band}_{res}.jp2" if res
                      else f"T{tile}_{stamp}_{band}.jp2"))
            asset.update(_to_jp2(src, work / rel, 0 if band == SCL_FILE else add_dn))
            asset["href"] = s3.put(rel, work / rel)
            asset["file:local_path"] = rel.split("/", 6)[-1]
            if "raster:offset" in asset:
                asset["raster:offset"] = -0.1 if float(baseline) >= 4.0 else 0.0
            assets[keys[band]] = asset
        tpl["assets"] = assets
        tpl["links"] = []
        out.append(tpl)
    return out
