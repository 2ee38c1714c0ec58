"""An Earth Engine expression evaluator for the fake server (:mod:`tests.fake_ee`): it decodes
the graph the real earthengine-api client sends and computes it, in numpy, over the scenes of a
local scene archive (the layout of :mod:`pipeline.sentinel.sources.local`: the same synthetic
scenes the demo's STAC catalogue and local archive are made from).

Nothing here imports the pipeline's compositor or scene readers: the collections are built from
the archive's files and ``scene.json`` with rasterio, as Earth Engine's catalogue holds them.

Collections (what Earth Engine's catalogue holds, built from each archive scene):

* ``COPERNICUS/S2_SR_HARMONIZED`` / ``COPERNICUS/S2_HARMONIZED``: a scene's L2A / L1C files as
  bands ``B1`` .. ``B12`` (+ ``B10`` for L1C, ``SCL`` where the archive has it), DN with the
  harmonization offset applied (``DN + offsets[level]``), masked where the file is nodata (0);
  properties ``system:index`` (``<time>_<time>_T<tile>``, the same for both levels, as on Earth
  Engine), ``system:time_start``, ``DATATAKE_IDENTIFIER`` (one per sensing time or the scene's
  ``datatake``), ``MEAN_SOLAR_AZIMUTH_ANGLE``, ``MEAN_SOLAR_ZENITH_ANGLE``; footprint = the
  B2 file's bounds.
* ``COPERNICUS/S2_CLOUD_PROBABILITY``: band ``probability``, s2cloudless
  (``S2PixelCloudDetector(all_bands=False)``) on the L1C bands bilinearly resampled to 10 m,
  as whole percent (uint8), masked where an input band is nodata.
* ``GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED``: a synthetic ``cs`` / ``cs_cdf`` band,
  ``(100 - probability) / 100`` (so ``cs < t`` is exactly ``probability > 100 (1 - t)``).
* ``COPERNICUS/S1_GRD`` (dB) / ``COPERNICUS/S1_GRD_FLOAT`` (linear power): bands ``VV`` /
  ``VH`` as the scene has them (masked where NaN); properties ``instrumentMode`` (IW),
  ``transmitterReceiverPolarisation`` (the list of polarisations), ``orbitProperties_pass``,
  ``relativeOrbitNumber_start``, ``platform_number`` (A), ``orbitNumber_start`` (the absolute
  orbit: sensing time // one orbit period, so the slices of one pass share it).

Semantics follow Earth Engine's documentation: per-band masks, binary operations on the
intersection of masks (one-band operands broadcast), ``mosaic`` with the last image on top,
``mean`` / ``count`` over unmasked pixels, joins by property, lazy ``resample`` of loaded
bands, ``reproject`` evaluating the directional distance transform at the requested scale.
Two simplifications are stated where they act: kernels treat masked pixels as 0 and keep the
centre's mask; a ``reproject`` to a coarser scale samples its (10 m) input at the coarse pixel
centres (Earth Engine would compute the input at that scale from its pyramids).

An unknown collection id, band or algorithm fails with HTTP 400 and Earth Engine's message.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
import math as _math
import re as _re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# The catalogue's ids written out, not imported from the recipe under test: a misspelt id
# there must miss here, as it misses on Earth Engine.
S2_L2A = "COPERNICUS/S2_SR_HARMONIZED"
S2_L1C = "COPERNICUS/S2_HARMONIZED"
S2_CLOUD_PROB = "COPERNICUS/S2_CLOUD_PROBABILITY"
CLOUD_SCORE_PLUS = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
S1_GRD = "COPERNICUS/S1_GRD"
S1_GRD_FLOAT = "COPERNICUS/S1_GRD_FLOAT"
#: Sentinel-1's orbit period (s): 175 orbits in 12 days.
S1_ORBIT_S = 12 * 86400 / 175
#: Earth Engine band name -> archive file band name.
_S2_FILES = {f"B{i}": f"B{i:02d}" for i in range(1, 13)} | {"B8A": "B8A"}
_CLOUD_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
_NATIVE_M = {"B01": 60, "B09": 60, "B10": 60, "B02": 10, "B03": 10, "B04": 10, "B08": 10,
             "SCL": 20}


class EEError(Exception):
    """An error Earth Engine answers with HTTP ``code`` and ``message``."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- evaluation grid


@dataclass(frozen=True)
class EvalGrid:
    """The grid images are computed on: a computePixels grid padded by ``pad`` px per side."""

    crs: str
    x0: float
    y0: float
    res: float
    width: int
    height: int
    pad: int

    @classmethod
    def from_request(cls, grid: dict[str, Any], pad: int) -> EvalGrid:
        a = grid["affineTransform"]
        if a.get("shearX", 0.0) or a.get("shearY", 0.0) or a["scaleX"] != -a["scaleY"]:
            raise EEError("fake EE: only north-up square-pixel grids are evaluated")
        res = float(a["scaleX"])
        return cls(str(grid["crsCode"]), float(a["translateX"]) - pad * res,
                   float(a["translateY"]) + pad * res, res,
                   int(grid["dimensions"]["width"]) + 2 * pad,
                   int(grid["dimensions"]["height"]) + 2 * pad, pad)

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def transform(self) -> Any:
        from affine import Affine

        return Affine(self.res, 0.0, self.x0, 0.0, -self.res, self.y0)

    def crop(self, a: np.ndarray) -> np.ndarray:
        p = self.pad
        return a[p : self.height - p, p : self.width - p]


# --------------------------------------------------------------------------- values


@dataclass
class Band:
    """One band on the evaluation grid: float64 values, bool mask (True = valid), a dtype."""

    values: np.ndarray
    mask: np.ndarray
    dtype: str = "float"


@dataclass
class LazyBand:
    """A band of a loaded asset, read onto the grid when first used (so ``resample`` still
    applies): ``read(resampling) -> Band``."""

    read: Callable[[str], Band]
    resampling: str = "nearest"

    def realize(self) -> Band:
        return self.read(self.resampling)


@dataclass(frozen=True)
class Footprint:
    """A geometry (shapely) in a CRS."""

    crs: str
    geom: Any

    def intersects(self, other: Footprint) -> bool:
        from pyproj import Transformer
        from shapely.ops import transform

        geom = self.geom
        if self.crs != other.crs:
            geom = transform(Transformer.from_crs(self.crs, other.crs, always_xy=True).transform,
                             geom)
        return bool(geom.intersects(other.geom))


@dataclass
class Img:
    bands: dict[str, Band | LazyBand]
    props: dict[str, Any] = field(default_factory=dict)
    footprint: Footprint | None = None  # loaded assets' footprint; None = unbounded
    projection: Proj | None = None

    def band(self, name: str) -> Band:
        b = self.bands[name]
        if isinstance(b, LazyBand):
            b = b.realize()
            self.bands[name] = b
        return b

    def all(self) -> list[tuple[str, Band]]:
        return [(n, self.band(n)) for n in list(self.bands)]

    def names(self) -> list[str]:
        return list(self.bands)


@dataclass(frozen=True)
class Proj:
    crs: str
    transform: tuple[float, ...] | None = None  # (a, b, c, d, e, f) of the band's pixels


@dataclass
class Deferred:
    """An image whose value depends on the scale it is computed at (``reproject``)."""

    compute: Callable[[float], Img]


@dataclass
class Coll:
    images: list[Img]


@dataclass
class Func:
    params: list[str]
    body: Any
    ev: Evaluator

    def __call__(self, *args: Any) -> Any:
        return self.ev.eval(self.body, dict(zip(self.params, args, strict=True)))


@dataclass
class Filt:
    test: Callable[[Img], bool] | None = None
    pair: Callable[[Img, Img], bool] | None = None


# --------------------------------------------------------------------------- the archive


def _s2_index(time: _dt.datetime, tile: str) -> str:
    t = time.strftime("%Y%m%dT%H%M%S")
    return f"{t}_{t}_T{tile}"


class Archive:
    """The scenes of a local archive as Earth Engine assets on an :class:`EvalGrid`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._prob_cache: dict[tuple[str, EvalGrid], Band] = {}
        self._read_cache: dict[tuple[Any, ...], Band] = {}
        self._detector: Any = None

    def _scenes(self, sensor: str) -> list[tuple[Path, dict[str, Any]]]:
        base = self.root / sensor
        out = []
        for folder in sorted(base.iterdir()) if base.is_dir() else []:
            meta = _json.loads((folder / "scene.json").read_text())
            out.append((folder, meta))
        return out

    @staticmethod
    def _time(meta: dict[str, Any]) -> _dt.datetime:
        return _dt.datetime.fromisoformat(str(meta["time"]).replace("Z", "+00:00"))

    def read(self, path: Path, g: EvalGrid, resampling: str, add: float = 0.0,
             nodata: float | None = 0.0) -> Band:
        """One single-band file warped onto ``g`` (GDAL; masked where nodata or outside)."""
        key = (str(path), g, resampling, add, repr(nodata))
        if key not in self._read_cache:
            self._read_cache[key] = self._read(path, g, resampling, add, nodata)
        b = self._read_cache[key]
        return Band(b.values.copy(), b.mask.copy(), b.dtype)

    def _read(self, path: Path, g: EvalGrid, resampling: str, add: float,
              nodata: float | None) -> Band:
        import rasterio
        from rasterio.warp import Resampling, reproject

        with rasterio.open(path) as src:
            arr = src.read(1).astype(np.float64)
            src_nodata = src.nodata if src.nodata is not None else nodata
            dst = np.full(g.shape, np.nan, np.float64)
            reproject(arr, dst, src_transform=src.transform, src_crs=src.crs,
                      src_nodata=src_nodata, dst_transform=g.transform(), dst_crs=g.crs,
                      dst_nodata=np.nan, resampling=Resampling[resampling])
        mask = np.isfinite(dst)
        return Band(np.where(mask, dst + add, 0.0), mask, "float")

    def _bounds(self, path: Path) -> Footprint:
        import rasterio
        from shapely.geometry import box

        with rasterio.open(path) as src:
            return Footprint(str(src.crs), box(*src.bounds))

    def s2(self, coll: str, g: EvalGrid) -> list[Img]:
        """The S2 collection ``coll`` (one image per archive scene holding its level)."""
        level = "L2A" if coll == S2_L2A else "L1C"
        out = []
        for folder, meta in self._scenes("s2"):
            src = folder / ("L1C" if coll in (S2_CLOUD_PROB, CLOUD_SCORE_PLUS) else level)
            if not (src / "B02.tif").is_file():
                continue
            time = self._time(meta)
            tile = str(meta.get("tile", folder.name.partition("_")[2]))
            off = float(meta.get("offsets", {}).get(src.name, 0.0))
            props = {
                "system:index": _s2_index(time, tile),
                "system:time_start": int(time.timestamp() * 1000),
                "DATATAKE_IDENTIFIER": "GS2A_" + str(meta.get("datatake") or
                                                       time.strftime("%Y%m%dT%H%M%S")),
                "MEAN_SOLAR_AZIMUTH_ANGLE": float(meta.get("sun_azimuth_deg", 150.0)),
                "MEAN_SOLAR_ZENITH_ANGLE": float(meta.get("sun_zenith_deg", 30.0)),
            }
            bands: dict[str, Band | LazyBand] = {}
            if coll in (S2_L2A, S2_L1C):
                for name, fb in _S2_FILES.items():
                    if fb == "B10" and level == "L2A":
                        continue
                    bands[name] = self._lazy(src / f"{fb}.tif", g, off)
                if (src / "SCL.tif").is_file():
                    bands["SCL"] = self._lazy(src / "SCL.tif", g, 0.0)
            else:
                prob = self._lazy_prob(src, g, off)
                if coll == S2_CLOUD_PROB:
                    bands["probability"] = prob
                else:
                    def cs(res: str, prob: LazyBand = prob) -> Band:
                        p = prob.realize()
                        return Band((100.0 - p.values) / 100.0, p.mask.copy(), "float")

                    bands["cs"] = LazyBand(cs)
                    bands["cs_cdf"] = LazyBand(cs)
            b1 = src / "B01.tif"
            proj = self._proj(b1, g)
            out.append(Img(bands, props, self._bounds(src / "B02.tif"), proj))
        return out

    def _proj(self, path: Path, g: EvalGrid) -> Proj:
        import rasterio

        with rasterio.open(path) as src:
            t = src.transform
            return Proj(str(src.crs), (t.a, t.b, t.c, t.d, t.e, t.f))

    def _lazy(self, path: Path, g: EvalGrid, add: float) -> LazyBand:
        return LazyBand(lambda res: self.read(path, g, res, add))

    def _lazy_prob(self, l1c: Path, g: EvalGrid, off: float) -> LazyBand:
        def prob(res: str) -> Band:
            key = (str(l1c), g)
            if key not in self._prob_cache:
                bands = [self.read(l1c / f"{b}.tif", g, "bilinear", off) for b in _CLOUD_BANDS]
                valid = np.logical_and.reduce([b.mask for b in bands])
                refl = np.stack([b.values for b in bands]).astype(np.float32) / np.float32(1e4)
                p = np.zeros(g.shape)
                if valid.any():
                    if self._detector is None:
                        from s2cloudless import S2PixelCloudDetector

                        self._detector = S2PixelCloudDetector(all_bands=False)
                    px = refl[:, valid].T
                    got = self._detector.get_cloud_probability_maps(px[None, :, None, :])
                    p[valid] = np.clip(np.rint(got[0, :, 0] * 100.0), 0, 100)
                self._prob_cache[key] = Band(p, valid, "uint8")
            b = self._prob_cache[key]
            return Band(b.values.copy(), b.mask.copy(), b.dtype)

        return LazyBand(prob)

    def s1(self, coll: str, g: EvalGrid) -> list[Img]:
        linear = coll == S1_GRD_FLOAT
        out = []
        for folder, meta in self._scenes("s1"):
            time = self._time(meta)
            units = str(meta.get("units", "db")).lower()
            pols = [p for p in ("VV", "VH") if (folder / f"{p}.tif").is_file()]

            def read(res: str, path: Path, units: str = units) -> Band:
                b = self.read(path, g, res, 0.0, nodata=float("nan"))
                v = b.values
                with np.errstate(divide="ignore", invalid="ignore"):
                    if units == "linear" and not linear:
                        v = 10.0 * np.log10(v)
                    elif units == "db" and linear:
                        v = 10.0 ** (v / 10.0)
                ok = b.mask & np.isfinite(v)
                return Band(np.where(ok, v, 0.0), ok, "float")

            bands: dict[str, Band | LazyBand] = {
                p: LazyBand(lambda res, path=folder / f"{p}.tif": read(res, path)) for p in pols}
            props = {
                "system:index": folder.name,
                "system:time_start": int(time.timestamp() * 1000),
                "instrumentMode": "IW",
                "transmitterReceiverPolarisation": pols,
                "orbitProperties_pass": meta.get("orbit_pass"),
                "relativeOrbitNumber_start": meta.get("relative_orbit"),
                "platform_number": "A",
                "orbitNumber_start": int(time.timestamp() // S1_ORBIT_S),
            }
            out.append(Img(bands, props, self._bounds(folder / f"{pols[0]}.tif"),
                           self._proj(folder / f"{pols[0]}.tif", g)))
        return out


# --------------------------------------------------------------------------- evaluator


def _circle(radius: float) -> np.ndarray:
    r = _math.floor(radius)
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    return (x * x + y * y) <= radius * radius


def _bcast(a: Img, b: Img, op: str) -> list[tuple[str, Band, Band]]:
    na, nb = a.names(), b.names()
    if len(na) == len(nb):
        return [(n, a.band(n), b.band(m)) for n, m in zip(na, nb, strict=True)]
    if len(nb) == 1:
        return [(n, a.band(n), b.band(nb[0])) for n in na]
    if len(na) == 1:
        return [(m, a.band(na[0]), b.band(m)) for m in nb]
    raise EEError(f"Image.{op}: Images must contain the same number of bands or only 1 band. "
                  f"Got {len(na)} and {len(nb)}.")


_BINARY: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], str | None]] = {
    "divide": (lambda x, y: np.divide(x, y, out=np.zeros_like(x), where=y != 0), "float"),
    "multiply": (np.multiply, None),
    "add": (np.add, None),
    "subtract": (np.subtract, None),
    "min": (np.minimum, None),
    "max": (np.maximum, None),
    "lt": (lambda x, y: (x < y).astype(float), "uint8"),
    "gt": (lambda x, y: (x > y).astype(float), "uint8"),
    "lte": (lambda x, y: (x <= y).astype(float), "uint8"),
    "gte": (lambda x, y: (x >= y).astype(float), "uint8"),
    "eq": (lambda x, y: (x == y).astype(float), "uint8"),
    "neq": (lambda x, y: (x != y).astype(float), "uint8"),
    "and": (lambda x, y: ((x != 0) & (y != 0)).astype(float), "uint8"),
    "or": (lambda x, y: ((x != 0) | (y != 0)).astype(float), "uint8"),
}


class Evaluator:
    """Evaluates one request's serialized expression on an :class:`EvalGrid`."""

    def __init__(self, archive: Archive, grid: EvalGrid | None) -> None:
        self.archive = archive
        self.grid = grid
        self.values: dict[str, Any] = {}
        self._memo: dict[str, Any] = {}

    # ---- graph
    def run(self, expr: dict[str, Any]) -> Any:
        self.values = expr.get("values", {})
        return self.eval(self.values[expr["result"]], {})

    def eval(self, node: Any, env: dict[str, Any]) -> Any:
        if not isinstance(node, dict):
            return node
        if "valueReference" in node:
            ref = node["valueReference"]
            if not env:
                if ref not in self._memo:
                    self._memo[ref] = self.eval(self.values[ref], env)
                return self._memo[ref]
            return self.eval(self.values[ref], env)
        if "constantValue" in node:
            return node["constantValue"]
        if "arrayValue" in node:
            return [self.eval(v, env) for v in node["arrayValue"].get("values", [])]
        if "dictionaryValue" in node:
            return {k: self.eval(v, env)
                    for k, v in node["dictionaryValue"].get("values", {}).items()}
        if "argumentReference" in node:
            return env[node["argumentReference"]]
        if "functionDefinitionValue" in node:
            fdv = node["functionDefinitionValue"]
            body = fdv["body"]
            body = self.values[body] if isinstance(body, str) else body
            return Func(list(fdv.get("argumentNames", [])), body, self)
        if "functionInvocationValue" in node:
            fiv = node["functionInvocationValue"]
            name = fiv.get("functionName")
            if name is None:
                raise EEError("fake EE: function references are not evaluated")
            args = {k: self.eval(v, env) for k, v in fiv.get("arguments", {}).items()}
            impl = getattr(self, "f_" + name.replace(".", "_"), None)
            if impl is None:
                raise EEError(f"fake EE: algorithm {name} is not evaluated here")
            return impl(**args)
        raise EEError(f"fake EE: cannot evaluate node {sorted(node)}")

    # ---- helpers
    def _img(self, x: Any, where: str) -> Img:
        if isinstance(x, Deferred):
            return x.compute(self._g().res)
        if isinstance(x, Img):
            return x
        if isinstance(x, int | float) and not isinstance(x, bool):
            return self.f_Image_constant(x)
        if x is None:
            raise EEError(f"{where}: Parameter 'input' is required.")
        raise EEError(f"{where}: Invalid argument: expected an Image, got {type(x).__name__}.")

    def _g(self) -> EvalGrid:
        if self.grid is None:
            raise EEError("fake EE: pixel values need a computePixels grid")
        return self.grid

    def _map_bands(self, img: Img, fn: Callable[[Band], Band], keep_props: bool = True) -> Img:
        return Img({n: fn(b) for n, b in img.all()}, dict(img.props) if keep_props else {},
                   img.footprint, img.projection)

    def _binary(self, op: str, image1: Any, image2: Any) -> Img:
        a, b = self._img(image1, f"Image.{op}"), self._img(image2, f"Image.{op}")
        fn, dtype = _BINARY[op]
        out: dict[str, Band | LazyBand] = {}
        for n, x, y in _bcast(a, b, op):
            out[n] = Band(fn(x.values, y.values), x.mask & y.mask,
                          dtype or ("float" if "float" in (x.dtype, y.dtype) else x.dtype))
        return Img(out, dict(a.props), a.footprint, a.projection)

    # ---- constructors and geometry
    def f_Image_constant(self, value: Any) -> Img:
        vals = value if isinstance(value, list) else [value]
        g = self._g() if self.grid is not None else None
        shape = g.shape if g else (1, 1)
        names = ["constant"] if len(vals) == 1 else [f"constant_{i}" for i in range(len(vals))]
        return Img({n: Band(np.full(shape, float(v)), np.ones(shape, bool),
                            "float" if isinstance(v, float) else "int")
                    for n, v in zip(names, vals, strict=True)})

    def f_Projection(self, crs: str, **kw: Any) -> Proj:
        return Proj(str(crs))

    def f_GeometryConstructors_Rectangle(self, coordinates: list[Any], crs: Any = None,
                                         geodesic: bool = True, **kw: Any) -> Any:
        from shapely.geometry import box

        flat = np.asarray(coordinates, float).ravel()
        return Footprint(crs.crs if isinstance(crs, Proj) else "EPSG:4326", box(*flat[:4]))

    def f_Feature(self, geometry: Footprint, metadata: Any = None) -> Footprint:
        return geometry

    def f_DateRange(self, start: Any, end: Any = None, **kw: Any) -> tuple[int, int]:
        def ms(v: Any) -> int:
            if isinstance(v, int | float):
                return int(v)
            t = _dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            if t.tzinfo is None:
                t = t.replace(tzinfo=_dt.UTC)
            return int(t.timestamp() * 1000)

        return ms(start), ms(end)

    def f_String(self, input: Any) -> str:
        return str(input)

    def f_String_cat(self, string1: Any, string2: Any) -> str:
        return str(string1) + str(string2)

    def f_Number_format(self, number: Any, pattern: str = "%s") -> str:
        if number is None:
            raise EEError("Number.format: Parameter 'number' is required.")
        return pattern % number

    def f_Number_subtract(self, left: Any, right: Any) -> float:
        for v, side in ((left, "left"), (right, "right")):
            if not isinstance(v, int | float):
                raise EEError(f"Number.subtract, argument '{side}': Invalid type.\nExpected "
                              f"type: Number.\nActual type: {'<null>' if v is None else type(v)}.")
        return left - right

    # ---- collections and filters
    def f_ImageCollection_load(self, id: str, version: Any = None) -> Coll:
        g = self._g() if self.grid is not None else None
        if g is None:  # value:compute: no pixels, a 1 px grid for footprints
            g = EvalGrid("EPSG:4326", 0.0, 0.0, 1.0, 1, 1, 0)
        if id in (S2_L2A, S2_L1C, S2_CLOUD_PROB, CLOUD_SCORE_PLUS):
            return Coll(self.archive.s2(id, g))
        if id in (S1_GRD, S1_GRD_FLOAT):
            return Coll(self.archive.s1(id, g))
        raise EEError(f"ImageCollection.load: ImageCollection asset '{id}' not found (does not "
                      "exist or caller does not have access).")

    def f_ImageCollection_fromImages(self, images: list[Any]) -> Coll:
        return Coll([self._img(i, "ImageCollection.fromImages") for i in images])

    def f_ImageCollection_merge(self, collection1: Coll, collection2: Coll) -> Coll:
        return Coll([*collection1.images, *collection2.images])

    def f_Collection_filter(self, collection: Coll, filter: Filt) -> Coll:
        assert filter.test is not None
        return Coll([i for i in collection.images if filter.test(i)])

    def f_Collection_map(self, collection: Coll, baseAlgorithm: Func,
                         dropNulls: bool = False) -> Coll:
        out = [baseAlgorithm(i) for i in collection.images]
        return Coll([self._img(i, "Collection.map") for i in out if i is not None])

    def f_Collection_size(self, collection: Coll) -> int:
        return len(collection.images)

    def f_AggregateFeatureCollection_array(self, collection: Coll, property: str) -> list[Any]:
        return [i.props[property] for i in collection.images if property in i.props]

    def f_List_distinct(self, list: list[Any]) -> list[Any]:
        out: list[Any] = []
        for v in list:
            if v not in out:
                out.append(v)
        return out

    def f_List_map(self, list: list[Any], baseAlgorithm: Func, dropNulls: bool = False
                   ) -> list[Any]:
        out = [baseAlgorithm(v) for v in list]
        return [v for v in out if v is not None] if dropNulls else out

    def f_Filter_intersects(self, leftField: str = ".all", rightValue: Any = None,
                            maxError: Any = None, **kw: Any) -> Filt:
        region = rightValue
        if not isinstance(region, Footprint):
            raise EEError("Filter.intersects: Parameter 'rightValue' must be a geometry.")
        return Filt(lambda img: img.footprint is None or img.footprint.intersects(region))

    def f_Filter_dateRangeContains(self, leftValue: tuple[int, int], rightField: str,
                                   **kw: Any) -> Filt:
        start, end = leftValue
        return Filt(lambda i: start <= int(i.props.get(rightField, -1)) < end)

    def f_Filter_equals(self, leftField: str | None = None, rightValue: Any = None,
                        rightField: str | None = None, leftValue: Any = None) -> Filt:
        if rightField is not None and leftField is not None:
            return Filt(pair=lambda p, s: leftField in p.props and
                        p.props.get(leftField) == s.props.get(rightField))
        assert leftField is not None
        return Filt(lambda i: leftField in i.props and i.props[leftField] == rightValue)

    def f_Filter_listContains(self, leftField: str, rightValue: Any, **kw: Any) -> Filt:
        return Filt(lambda i: isinstance(i.props.get(leftField), list)
                    and rightValue in i.props[leftField])

    def f_Filter_or(self, filters: list[Filt]) -> Filt:
        return Filt(lambda i: any(f.test is not None and f.test(i) for f in filters))

    def f_Join_saveFirst(self, matchKey: str, **kw: Any) -> tuple[str, str]:
        return ("saveFirst", matchKey)

    def f_Join_inverted(self) -> tuple[str, str]:
        return ("inverted", "")

    def f_Join_apply(self, join: tuple[str, str], primary: Coll, secondary: Coll,
                     condition: Filt) -> Coll:
        assert condition.pair is not None
        kind, key = join
        out = []
        for p in primary.images:
            match = next((s for s in secondary.images if condition.pair(p, s)), None)
            if kind == "saveFirst" and match is not None:
                out.append(Img(dict(p.bands), {**p.props, key: match}, p.footprint,
                               p.projection))
            elif kind == "inverted" and match is None:
                out.append(p)
        return Coll(out)

    # ---- properties
    def f_Element_get(self, object: Img, property: str) -> Any:
        return object.props.get(property)

    def f_Element_set(self, object: Img, key: str, value: Any) -> Img:
        return Img(dict(object.bands), {**object.props, key: value}, object.footprint,
                   object.projection)

    def f_Image_copyProperties(self, destination: Any, source: Img,
                               properties: list[str] | None = None, exclude: Any = None) -> Img:
        dst = self._img(destination, "Image.copyProperties")
        keys = properties if properties is not None else list(source.props)
        return Img(dict(dst.bands), {**dst.props, **{k: source.props[k] for k in keys
                                                    if k in source.props}},
                   dst.footprint, dst.projection)

    # ---- bands
    def f_Image_select(self, input: Any, bandSelectors: list[Any],
                       newNames: list[str] | None = None) -> Img:
        img = self._img(input, "Image.select")
        names = img.names()
        picked: list[str] = []
        for sel in bandSelectors:
            if isinstance(sel, int):
                if not 0 <= sel < len(names):
                    raise EEError(f"Image.select: Band index {sel} out of bounds. Available "
                                  f"bands: [{', '.join(names)}]")
                picked.append(names[sel])
                continue
            hits = [n for n in names if _re.fullmatch(str(sel), n)]
            if not hits:
                raise EEError(f"Image.select: Band pattern '{sel}' did not match any bands. "
                              f"Available bands: [{', '.join(names)}]")
            picked += [h for h in hits if h not in picked]
        out = Img({n: img.bands[n] for n in picked}, dict(img.props), img.footprint,
                  img.projection)
        if newNames:
            out.bands = dict(zip(newNames, out.bands.values(), strict=True))
        return out

    def f_Image_rename(self, input: Any, names: list[str]) -> Img:
        img = self._img(input, "Image.rename")
        if len(names) != len(img.bands):
            raise EEError(f"Image.rename: The number of names ({len(names)}) must match the "
                          f"number of bands ({len(img.bands)}).")
        return Img(dict(zip(names, img.bands.values(), strict=True)), dict(img.props),
                   img.footprint, img.projection)

    def f_Image_addBands(self, dstImg: Any, srcImg: Any, names: Any = None,
                         overwrite: bool = False) -> Img:
        dst, src = self._img(dstImg, "Image.addBands"), self._img(srcImg, "Image.addBands")
        bands = dict(dst.bands)
        for n, b in src.bands.items():
            if n in bands and not overwrite:
                raise EEError(f"Image.addBands: Can't add a band named '{n}' to image because "
                              f"a band with this name already exists. Existing bands: "
                              f"[{', '.join(bands)}].")
            bands[n] = b
        return Img(bands, dict(dst.props), dst.footprint, dst.projection)

    def f_Image_resample(self, image: Any, mode: str = "bilinear") -> Img:
        img = self._img(image, "Image.resample")
        bands: dict[str, Band | LazyBand] = {
            n: (LazyBand(b.read, mode) if isinstance(b, LazyBand) else b)
            for n, b in img.bands.items()}
        return Img(bands, dict(img.props), img.footprint, img.projection)

    def f_Image_projection(self, image: Any) -> Proj:
        img = self._img(image, "Image.projection")
        return img.projection or Proj(self._g().crs)

    # ---- masks
    def f_Image_mask(self, image: Any, mask: Any = None) -> Img:
        if mask is not None:
            return self.f_Image_updateMask(image, mask)
        img = self._img(image, "Image.mask")
        return self._map_bands(img, lambda b: Band(b.mask.astype(float),
                                                   np.ones_like(b.mask), "float"))

    def f_Image_updateMask(self, image: Any, mask: Any) -> Img:
        img, m = self._img(image, "Image.updateMask"), self._img(mask, "Image.updateMask")
        mb = [m.band(n) for n in m.names()]
        out: dict[str, Band | LazyBand] = {}
        for k, (n, b) in enumerate(img.all()):
            if len(mb) == 1:
                mm = mb[0]
            elif len(mb) == len(img.bands):
                mm = mb[k]
            else:
                raise EEError("Image.updateMask: Mask must have the same number of bands as "
                              "the image, or 1 band.")
            out[n] = Band(b.values, b.mask & mm.mask & (mm.values != 0), b.dtype)
        return Img(out, dict(img.props), img.footprint, img.projection)

    def f_Image_selfMask(self, image: Any) -> Img:
        return self.f_Image_updateMask(image, image)

    def f_Image_unmask(self, input: Any, value: Any = 0, sameFootprint: bool = True) -> Img:
        img = self._img(input, "Image.unmask")
        fill = self._img(value if value is not None else 0, "Image.unmask")
        fb = [fill.band(n) for n in fill.names()]
        out: dict[str, Band | LazyBand] = {}
        for k, (n, b) in enumerate(img.all()):
            f = fb[0] if len(fb) == 1 else fb[k]
            out[n] = Band(np.where(b.mask, b.values, f.values), np.ones_like(b.mask), b.dtype)
        return Img(out, dict(img.props), img.footprint, img.projection)

    # ---- per-pixel operations
    def f_Image_divide(self, image1: Any, image2: Any) -> Img:
        return self._binary("divide", image1, image2)

    def f_Image_multiply(self, image1: Any, image2: Any) -> Img:
        return self._binary("multiply", image1, image2)

    def f_Image_add(self, image1: Any, image2: Any) -> Img:
        return self._binary("add", image1, image2)

    def f_Image_subtract(self, image1: Any, image2: Any) -> Img:
        return self._binary("subtract", image1, image2)

    def f_Image_min(self, image1: Any, image2: Any) -> Img:
        return self._binary("min", image1, image2)

    def f_Image_max(self, image1: Any, image2: Any) -> Img:
        return self._binary("max", image1, image2)

    def f_Image_lt(self, image1: Any, image2: Any) -> Img:
        return self._binary("lt", image1, image2)

    def f_Image_gt(self, image1: Any, image2: Any) -> Img:
        return self._binary("gt", image1, image2)

    def f_Image_lte(self, image1: Any, image2: Any) -> Img:
        return self._binary("lte", image1, image2)

    def f_Image_gte(self, image1: Any, image2: Any) -> Img:
        return self._binary("gte", image1, image2)

    def f_Image_eq(self, image1: Any, image2: Any) -> Img:
        return self._binary("eq", image1, image2)

    def f_Image_neq(self, image1: Any, image2: Any) -> Img:
        return self._binary("neq", image1, image2)

    def f_Image_and(self, image1: Any, image2: Any) -> Img:
        return self._binary("and", image1, image2)

    def f_Image_or(self, image1: Any, image2: Any) -> Img:
        return self._binary("or", image1, image2)

    def f_Image_not(self, value: Any) -> Img:
        return self._map_bands(self._img(value, "Image.not"),
                               lambda b: Band((b.values == 0).astype(float), b.mask, "uint8"))

    def f_Image_log10(self, value: Any) -> Img:
        def log(b: Band) -> Band:
            ok = b.mask & (b.values > 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                return Band(np.where(ok, np.log10(np.where(ok, b.values, 1.0)), 0.0), ok,
                            "float")

        return self._map_bands(self._img(value, "Image.log10"), log)

    def _cast(self, value: Any, dtype: str, lo: float, hi: float, where: str) -> Img:
        def cast(b: Band) -> Band:
            v = np.clip(np.trunc(b.values), lo, hi)
            return Band(v, b.mask, dtype)

        return self._map_bands(self._img(value, where), cast)

    def f_Image_toUint8(self, value: Any) -> Img:
        return self._cast(value, "uint8", 0, 255, "Image.toUint8")

    def f_Image_toUint16(self, value: Any) -> Img:
        return self._cast(value, "uint16", 0, 65535, "Image.toUint16")

    def f_Image_toFloat(self, value: Any) -> Img:
        return self._map_bands(self._img(value, "Image.toFloat"), lambda b: Band(
            b.values.astype(np.float32).astype(np.float64), b.mask, "float"))

    def f_Image_remap(self, image: Any, **kw: Any) -> Img:
        src, dst = kw["from"], kw["to"]
        default = kw.get("defaultValue")
        img = self._img(image, "Image.remap")
        if len(img.bands) != 1:
            raise EEError("Image.remap: Image must have exactly one band, or the band must be "
                          "specified.")
        ((_, b),) = img.all()
        out = np.zeros_like(b.values)
        hit = np.zeros_like(b.mask)
        for f, t in zip(src, dst, strict=True):
            sel = b.values == f
            out[sel] = t
            hit |= sel
        mask = b.mask & (hit | (default is not None))
        if default is not None:
            out = np.where(hit, out, float(default))
        return Img({"remapped": Band(out, mask, "int")}, dict(img.props), img.footprint,
                   img.projection)

    def f_Reducer_max(self, **kw: Any) -> str:
        return "max"

    def f_Image_reduce(self, image: Any, reducer: str) -> Img:
        img = self._img(image, "Image.reduce")
        bands = [b for _, b in img.all()]
        vals = np.stack([np.where(b.mask, b.values, -np.inf) for b in bands])
        mask = np.logical_or.reduce([b.mask for b in bands])
        return Img({reducer: Band(np.where(mask, vals.max(axis=0), 0.0), mask, "float")},
                   dict(img.props), img.footprint, img.projection)

    # ---- kernels and neighbourhoods (masked pixels are 0; the centre's mask is kept)
    def f_Kernel_circle(self, radius: float, units: str = "pixels", normalize: bool = True,
                        magnitude: float = 1.0) -> np.ndarray:
        if units != "pixels":
            raise EEError("fake EE: only pixel kernels are evaluated")
        k = _circle(float(radius)).astype(float) * float(magnitude)
        return k / k.sum() if normalize else k

    def f_Image_convolve(self, image: Any, kernel: np.ndarray) -> Img:
        from scipy import ndimage

        def conv(b: Band) -> Band:
            v = ndimage.correlate(np.where(b.mask, b.values, 0.0), kernel, mode="constant")
            return Band(v, b.mask, "float")

        return self._map_bands(self._img(image, "Image.convolve"), conv)

    def f_Image_focalMax(self, image: Any, radius: float = 1.0, kernelType: str = "circle",
                         units: str = "pixels", iterations: int = 1, kernel: Any = None) -> Img:
        from scipy import ndimage

        if kernelType != "circle" or units != "pixels":
            raise EEError("fake EE: only circular pixel focalMax is evaluated")
        fp = _circle(float(radius))

        def dil(b: Band) -> Band:
            v = np.where(b.mask, b.values, -np.inf)
            for _ in range(int(iterations)):
                v = ndimage.grey_dilation(v, footprint=fp, mode="constant", cval=-np.inf)
            return Band(np.where(np.isfinite(v), v, 0.0), b.mask, b.dtype)

        return self._map_bands(self._img(image, "Image.focalMax"), dil)

    def f_Image_directionalDistanceTransform(self, source: Any, angle: float,
                                             maxDistance: int, labelBand: Any = None
                                             ) -> Deferred:
        """Distance (px of the scale it is computed at) from each pixel to the nearest non-zero
        pixel of ``source`` in direction ``angle`` (degrees counter-clockwise from east), up to
        ``maxDistance`` px; band ``distance``, masked where none is found."""
        src = self._img(source, "Image.directionalDistanceTransform")
        ((_, b),) = src.all()[:1]
        g = self._g()
        hit = b.mask & (b.values != 0)

        def compute(scale: float) -> Img:
            f = max(1, round(scale / g.res))
            # coarse grid aligned to the evaluation grid; its pixel centres sample ``hit``
            hc, wc = -(-g.height // f), -(-g.width // f)
            rows = np.minimum(np.arange(hc) * f + f // 2, g.height - 1)
            cols = np.minimum(np.arange(wc) * f + f // 2, g.width - 1)
            coarse = hit[np.ix_(rows, cols)]
            dist = np.full(coarse.shape, np.inf)
            ux, uy = _math.cos(_math.radians(angle)), -_math.sin(_math.radians(angle))
            for k in range(int(maxDistance), -1, -1):
                dx, dy = round(ux * k), round(uy * k)
                sh = np.zeros_like(coarse)
                ys = slice(max(0, -dy), min(hc, hc - dy))
                xs = slice(max(0, -dx), min(wc, wc - dx))
                ys2 = slice(max(0, dy), min(hc, hc + dy))
                xs2 = slice(max(0, dx), min(wc, wc + dx))
                sh[ys, xs] = coarse[ys2, xs2]
                dist[sh] = k
            fine = np.repeat(np.repeat(dist, f, axis=0), f, axis=1)[: g.height, : g.width]
            ok = np.isfinite(fine)
            return Img({"distance": Band(np.where(ok, fine, 0.0), ok, "float")},
                       dict(src.props), src.footprint, src.projection)

        return Deferred(compute)

    def f_Image_reproject(self, image: Any, crs: Any, crsTransform: Any = None,
                          scale: float | None = None) -> Img:
        if isinstance(image, Deferred):
            return image.compute(float(scale) if scale else self._g().res)
        return self._img(image, "Image.reproject")

    # ---- reducers over collections
    def _stack(self, coll: Coll, where: str) -> tuple[list[str], list[Img]]:
        if not coll.images:
            return [], []
        names = coll.images[0].names()
        for i in coll.images[1:]:
            if i.names() != names:
                raise EEError(f"{where}: Images must have the same bands; got {names} and "
                              f"{i.names()}.")
        return names, coll.images

    def f_reduce_mean(self, collection: Coll) -> Img:
        names, imgs = self._stack(collection, "ImageCollection.mean")
        out: dict[str, Band | LazyBand] = {}
        for n in names:
            s = np.zeros(self._g().shape)
            c = np.zeros(self._g().shape)
            for i in imgs:
                b = i.band(n)
                s += np.where(b.mask, b.values, 0.0)
                c += b.mask
            ok = c > 0
            out[n] = Band(np.where(ok, s / np.maximum(c, 1), 0.0), ok, "float")
        return Img(out)

    def f_reduce_count(self, collection: Coll) -> Img:
        names, imgs = self._stack(collection, "ImageCollection.count")
        out: dict[str, Band | LazyBand] = {}
        for n in names:
            c = np.zeros(self._g().shape)
            for i in imgs:
                c += i.band(n).mask
            out[n] = Band(c, c > 0, "int")
        return Img(out)

    def f_ImageCollection_mosaic(self, collection: Coll) -> Img:
        names, imgs = self._stack(collection, "ImageCollection.mosaic")
        out: dict[str, Band | LazyBand] = {}
        for n in names:
            v = np.zeros(self._g().shape)
            m = np.zeros(self._g().shape, bool)
            dtype = "float"
            for i in imgs:  # the last image is on top
                b = i.band(n)
                v = np.where(b.mask, b.values, v)
                m |= b.mask
                dtype = b.dtype
            out[n] = Band(v, m, dtype)
        return Img(out)


# --------------------------------------------------------------------------- request answers


#: Pixels by which a request grid is padded for evaluation: the reach of every neighbourhood the
#: recipes use (1 km shadow projection + s2cloudless disks), so a block's pixels never depend on
#: where the block ends, as on Earth Engine.
EVAL_PAD = 136


def compute_pixels(archive: Archive, expr: dict[str, Any], grid: dict[str, Any],
                   band_ids: list[str]) -> tuple[list[str], dict[str, Band]]:
    """The bands ``band_ids`` of ``expr`` on a computePixels ``grid`` (cropped to it)."""
    g = EvalGrid.from_request(grid, EVAL_PAD)
    ev = Evaluator(archive, g)
    img = ev._img(ev.run(expr), "computePixels")
    out: dict[str, Band] = {}
    for name in band_ids:
        if name not in img.bands:
            raise EEError(f"Image.select: Band pattern '{name}' did not match any bands. "
                          f"Available bands: [{', '.join(img.names())}]")
        b = img.band(name)
        out[name] = Band(g.crop(b.values), g.crop(b.mask), b.dtype)
    return band_ids, out


def compute_value(archive: Archive, expr: dict[str, Any], grid: dict[str, Any] | None) -> Any:
    """The JSON value of a non-image expression (``value:compute``)."""
    g = EvalGrid.from_request(grid, 0) if grid else None
    ev = Evaluator(archive, g)
    return ev.run(expr)
