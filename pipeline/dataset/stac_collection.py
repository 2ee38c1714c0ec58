"""STAC metadata of the native dataset: one Collection, one Item per patch (pystac objects).

Per Item (id = patch id):

* geometry / bbox: the HR patch in EPSG:4326 (from the index ``geometry``);
* ``datetime`` null, ``start_datetime`` = T1 date, ``end_datetime`` = T2 date (UTC midnight);
* ``gsd``, ``fusu:split``, ``fusu:aoi``, ``fusu:city``, ``fusu:change_fraction``,
  ``fusu:footprint`` (window of the AOI grid: col0, row0, size_px, grid CRS, and the patch's
  offset inside it in grid pixels), ``fusu:months`` (the Sentinel months);
* projection extension: ``proj:code`` (HR CRS), ``proj:shape``, ``proj:transform``,
  ``proj:bbox`` of the HR patch grid; the Sentinel asset carries its own grid's projection;
* label extension: raster labels, ``label:classes`` = the class values (0..17) with names in
  ``label:description``, tasks segmentation + change detection; label assets have role
  ``labels``;
* assets: ``hr_t1``, ``hr_t2`` (RGB GeoTIFF), ``label_t1``, ``label_t2`` (class GeoTIFF, 255
  = no data), ``change_bin`` (uint8 0/1, 255 ignored), ``change_fromto`` (uint16 y1*18+y2,
  65535 ignored), ``sentinel`` (the AOI's Zarr mosaic; the footprint window is in
  ``fusu:footprint``).

Asset hrefs are relative to the item JSON (``stac/<id>/<id>.json`` -> ``../../aois/...``) and
:func:`pipeline.io.export.save_stac` saves the catalogue self-contained (relative links), so
the dataset folder can be moved or served as a whole.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import shapely

PREFIX = "fusu"
ZARR_MEDIA_TYPE = "application/vnd+zarr"


def _date(s: Any) -> dt.datetime:
    d = dt.date.fromisoformat(str(s)[:10])
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC)


def _hr_transform(geom_wkb: bytes, size_px: int) -> tuple[list[float], list[float]]:
    g = shapely.from_wkb(geom_wkb)
    minx, miny, maxx, maxy = g.bounds
    res = (maxx - minx) / size_px
    return [res, 0.0, minx, 0.0, -(maxy - miny) / size_px, maxy], [minx, miny, maxx, maxy]


def build_collection(
    index: Any,
    root: Path,
    months_by_aoi: Mapping[str, Sequence[str]],
    class_names: Sequence[str],
    collection_id: str = "dataset",
    description: str = "FUSU-style multi-temporal land-use change dataset",
    stac_dir: Path | None = None,
) -> Any:
    """Build the pystac Collection for the dataset index (GeoDataFrame in EPSG:4326).

    Args:
        index: the dataset index (``patches.parquet``) as a GeoDataFrame.
        root: dataset root (asset paths in the index are relative to it).
        months_by_aoi: the Sentinel months of each AOI.
        class_names: class names indexed by value (0..n-1).
        stac_dir: where the catalogue will be saved (default ``root/stac``); asset hrefs are
            written relative to each item's JSON (``<stac_dir>/<id>/<id>.json``).
    """
    import warnings

    import pystac
    from pystac.extensions.projection import ProjectionExtension

    with warnings.catch_warnings():  # pystac flags the (pilot-maturity) label extension
        warnings.simplefilter("ignore", DeprecationWarning)
        from pystac.extensions.label import LabelClasses, LabelExtension, LabelTask, LabelType

    root = Path(root).resolve()
    stac_dir = Path(stac_dir).resolve() if stac_dir is not None else root / "stac"
    items = []
    for r in index.itertuples(index=False):
        geom = r.geometry
        size = int(r.size_px)
        transform, hr_bbox = _hr_transform(r.hr_geometry_wkb, size)
        props: dict[str, Any] = {
            "gsd": float(r.gsd_m),
            f"{PREFIX}:split": str(r.split),
            f"{PREFIX}:aoi": str(r.aoi),
            f"{PREFIX}:city": str(r.city),
            f"{PREFIX}:months": list(months_by_aoi.get(str(r.aoi), [])),
            f"{PREFIX}:change_fraction": (
                None if r.change_fraction is None or not np.isfinite(r.change_fraction)
                else float(r.change_fraction)
            ),
            f"{PREFIX}:footprint": {
                "col0": int(r.fp_col0), "row0": int(r.fp_row0), "size_px": int(r.fp_size_px),
                "grid_crs": str(r.grid_crs),
                "patch_off_x_px": float(r.patch_off_x_px),
                "patch_off_y_px": float(r.patch_off_y_px),
                "patch_w_px": float(r.patch_w_px), "patch_h_px": float(r.patch_h_px),
            },
        }
        item = pystac.Item(
            id=str(r.patch_id),
            geometry=shapely.geometry.mapping(geom),
            bbox=list(geom.bounds),
            datetime=None,
            start_datetime=_date(r.t1),
            end_datetime=_date(r.t2),
            properties=props,
        )
        proj = ProjectionExtension.ext(item, add_if_missing=True)
        proj.apply(code=str(r.hr_crs), shape=[size, size], transform=transform, bbox=hr_bbox)
        lab = LabelExtension.ext(item, add_if_missing=True)
        lab.apply(
            label_description="FUSU land-use classes: " + ", ".join(
                f"{v}={n}" for v, n in enumerate(class_names)) + "; 255 = no data",
            label_type=LabelType.RASTER,
            label_properties=None,
            label_classes=[LabelClasses.create(classes=list(range(len(class_names))), name=None)],
            label_tasks=[LabelTask.SEGMENTATION, "change detection"],
        )

        item_dir = stac_dir / str(r.patch_id)

        def add(
            key: str, rel: str, title: str, roles: list[str],
            media: str = pystac.MediaType.GEOTIFF, _item: Any = item, _dir: Path = item_dir,
            extra: dict[str, Any] | None = None,
        ) -> None:
            href = Path(os.path.relpath(root / rel, _dir)).as_posix()
            _item.add_asset(key, pystac.Asset(href=href, title=title, media_type=media,
                                              roles=roles, extra_fields=extra or None))

        add("hr_t1", r.hr_t1, "T1 HR RGB", ["data"])
        add("hr_t2", r.hr_t2, "T2 HR RGB (T1 grid)", ["data"])
        add("label_t1", r.label_t1, "T1 land-use labels", ["labels"])
        add("label_t2", r.label_t2, "T2 land-use labels", ["labels"])
        add("change_bin", r.change_bin, "binary change (0/1, 255 ignored)", ["labels"])
        add("change_fromto", r.change_fromto, "from-to change (y1*18+y2, 65535 ignored)",
            ["labels"])
        grid_epsg = str(r.grid_crs)
        add("sentinel", f"sentinel/{r.aoi}.zarr", "monthly Sentinel-2/1 mosaic of the AOI",
            ["data"], media=ZARR_MEDIA_TYPE, extra={"proj:code": grid_epsg})
        items.append(item)
    if not items:
        from pipeline.errors import DatasetError

        raise DatasetError("the dataset index has no patch: nothing to describe in STAC")
    bounds = np.array([it.bbox for it in items])
    starts = [t for it in items if (t := it.common_metadata.start_datetime) is not None]
    ends = [t for it in items if (t := it.common_metadata.end_datetime) is not None]
    coll = pystac.Collection(
        id=collection_id,
        description=description,
        extent=pystac.Extent(
            pystac.SpatialExtent([[float(bounds[:, 0].min()), float(bounds[:, 1].min()),
                                   float(bounds[:, 2].max()), float(bounds[:, 3].max())]]),
            pystac.TemporalExtent([[min(starts), max(ends)]]),
        ),
        license="other",
        summaries=pystac.Summaries({
            f"{PREFIX}:split": ["train", "val", "test", "guard"],
            "label:classes": [{"name": None, "classes": list(range(len(class_names)))}],
        }),
        extra_fields={f"{PREFIX}:class_names": {str(v): n for v, n in enumerate(class_names)}},
    )
    coll.add_items(items)
    return coll
