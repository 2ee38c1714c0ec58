"""Fake Earth Engine REST server for offline tests and benchmarks (plus AOI factories).

The real earthengine-api client talks to :class:`FakeEarthEngine` (``ee.Initialize(url=...)``).
Two modes:

* ``archive=<scene archive>``: the fake **evaluates** every expression graph over that
  archive's scenes (:mod:`tests.fake_ee_eval`: collections, filters, joins, masks, kernels,
  reducers, the computePixels grid; unknown assets, bands and algorithms fail with Earth
  Engine's 400). The cross-source equivalence tests and the ``source: gee`` workflow test use
  it; a wrong band, scale or mask in the recipe changes the pixels.
* default (known answers): the fake reads each request's collection ids, filterDate range,
  ``bandIds`` and exact ``grid`` and answers values that are a known function of band, month
  and pixel-centre coordinates (:func:`fake_values`), so a wrong grid, flipped axis,
  one-pixel offset or wrong month fails a test; the client-side tests (retries, splits,
  decoding, quotas) use it.

Both inject faults (:class:`Fault`) and count requests, pixels and bytes
(:class:`FakeCounters`).
"""

from __future__ import annotations

import datetime as _dt
import io as _io
import json as _json
import os as _os
import re as _re
import threading as _threading
import time as _time
from collections.abc import Callable, Iterator
from contextlib import contextmanager as _contextmanager
from dataclasses import dataclass as _dataclass
from dataclasses import field as _field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

from pipeline.bands import S1_BANDS, S2_BANDS
from pipeline.grid import Footprints, compute_footprints
from tests.loopback import LoopbackService


def fusu_like_footprints(
    n_rows: int,
    n_cols: int,
    keep: Callable[[int, int], bool] | None = None,
    spacing_m: float = 256.0,
    patch_m: float = 256.0,
    size_px: int = 128,
    epsg: int = 32649,
    origin: tuple[float, float] = (650003.7, 3795011.2),
) -> Footprints:
    """Footprints of a FUSU-like lattice of patches (512 px x 0.5 m = 256 m, 128 px footprints).

    ``keep(i, j)`` selects lattice positions (default: all, i.e. a contiguous AOI).
    """
    x0, y0 = origin
    pb = [
        (
            x0 + j * spacing_m,
            y0 - i * spacing_m - patch_m,
            x0 + j * spacing_m + patch_m,
            y0 - i * spacing_m,
        )
        for i in range(n_rows)
        for j in range(n_cols)
        if keep is None or keep(i, j)
    ]
    return compute_footprints(np.array(pb, dtype=np.float64), epsg, size_px)


# =========================================================================== fake EE server


MAX_REQUEST_BYTES = 50_331_648
S2_L2A = "COPERNICUS/S2_SR_HARMONIZED"
S2_L1C = "COPERNICUS/S2_HARMONIZED"
S1_GRD = "COPERNICUS/S1_GRD"
S1_GRD_FLOAT = "COPERNICUS/S1_GRD_FLOAT"
_DATE_RE = _re.compile(r"^\d{4}-\d{2}-\d{2}")


def month_index(month: str) -> int:
    """Months since 2000-01 (``YYYY-MM``)."""
    y, m = (int(v) for v in month.split("-"))
    return (y - 2000) * 12 + (m - 1)


def pixel_indices(x_c: np.ndarray, y_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global 10 m lattice indices (column, row-from-north) of pixel centres (m)."""
    xi = np.floor(x_c / 10.0).astype(np.int64)
    yi = np.floor(-y_c / 10.0).astype(np.int64)
    return xi, yi


def fake_values(band: str, month: str, x_c: np.ndarray, y_c: np.ndarray, product: str = "L2A"
                ) -> np.ndarray:
    """The fake's value of ``band`` at pixel centres (x_c, y_c) (float64, before dtype cast).

    S2 reflectance: (1000*(b+1) + 37*m + xi%200 + 7*(yi%100)) / 10000 (+0.5 for L1C);
    S1 dB: VV = -5 - 0.1*m - 0.01*(xi%100) - 0.05*(yi%50), VH = VV - 7;
    s2_count = 1 + (m + xi + yi) % 4, but 0 where (xi + 2*yi) % 13 == 0 (cloudy all month);
    s1_count = 2 + m % 3. Any one-pixel shift, flipped axis or wrong month changes values.
    """
    m = month_index(month)
    xi, yi = pixel_indices(x_c, y_c)
    if band in S2_BANDS:
        b = S2_BANDS.index(band)
        v = (1000 * (b + 1) + 37 * m + xi % 200 + 7 * (yi % 100)) / 10000.0
        return v + (0.5 if product == "L1C" else 0.0)
    if band == "s2_count":
        c = 1 + (m + xi + yi) % 4
        return np.where((xi + 2 * yi) % 13 == 0, 0, c).astype(np.float64)
    if band == "VV":
        return -5.0 - 0.1 * m - 0.01 * (xi % 100) - 0.05 * (yi % 50)
    if band == "VH":
        return -12.0 - 0.1 * m - 0.01 * (xi % 100) - 0.05 * (yi % 50)
    if band == "s1_count":
        return np.full(np.shape(x_c), 2 + m % 3, dtype=np.float64)
    raise KeyError(band)


def band_masked(band: str, x_c: np.ndarray, y_c: np.ndarray) -> np.ndarray:
    """Pixels where ``band`` alone is masked in every observation of every month (bool): B1
    and B9 in a sparse lattice (the 60 m bands' own footprints), VH in another (a VV-only
    pass). The other bands of those pixels are valid."""
    xi, yi = pixel_indices(x_c, y_c)
    if band == "B1":
        return (xi + 3 * yi) % 11 == 0
    if band == "B9":
        return (3 * xi + yi) % 17 == 0
    if band == "VH":
        return (2 * xi + yi) % 9 == 0
    return np.zeros(np.shape(x_c), bool)


def edge_zone(x_c: np.ndarray, y_c: np.ndarray) -> np.ndarray:
    """Scene-edge pixels (bool; every 61st lattice column): B8A and B9 are masked there in every
    scene while the other bands carry (invalid) values. A recipe without the catalogue's edge
    mask counts them as clear observations."""
    xi, _ = pixel_indices(x_c, y_c)
    return xi % 61 == 0


def overlap_zone(x_c: np.ndarray, y_c: np.ndarray) -> np.ndarray:
    """Pixels covered by two MGRS granules of each S2 datatake and by two slices of each S1
    pass (bool; 4 rows in every 40). Counted twice unless the recipe keeps one observation per
    datatake / orbit-day."""
    _, yi = pixel_indices(x_c, y_c)
    return yi % 40 < 4


def grid_centres(grid: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(x_c, y_c) (h, w) pixel-centre coordinates of a computePixels grid."""
    a = grid["affineTransform"]
    w, h = int(grid["dimensions"]["width"]), int(grid["dimensions"]["height"])
    j, i = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    x = a.get("translateX", 0.0) + j * a.get("scaleX", 0.0) + i * a.get("shearX", 0.0)
    y = a.get("translateY", 0.0) + j * a.get("shearY", 0.0) + i * a.get("scaleY", 0.0)
    return x, y


def expected_block(grid_dict: dict[str, Any], month: str, product: str | None = "L2A",
                   with_s1: bool = True) -> dict[str, np.ndarray]:
    """What a correct source returns for a block: s2 (12,h,w) f32 NaN-masked, counts, s1.

    Per-band masks (:func:`band_masked`) give NaN in that band only; the scene edge
    (:func:`edge_zone`) has no clear S2 observation; overlaps (:func:`overlap_zone`) count
    once.
    """
    x, y = grid_centres(grid_dict)
    h, w = x.shape
    out = {
        "s2": np.full((12, h, w), np.nan, np.float32),
        "s2_count": np.zeros((h, w), np.uint8),
        "s1": np.full((2, h, w), np.nan, np.float32),
        "s1_count": np.zeros((h, w), np.uint8),
    }
    if product is not None:
        cnt = np.where(edge_zone(x, y), 0, fake_values("s2_count", month, x, y))
        out["s2_count"] = cnt.astype(np.uint8)
        for k, b in enumerate(S2_BANDS):
            v = fake_values(b, month, x, y, product).astype(np.float32)
            out["s2"][k] = np.where((cnt > 0) & ~band_masked(b, x, y), v, np.nan)
    if with_s1:
        out["s1_count"] = fake_values("s1_count", month, x, y).astype(np.uint8)
        for k, b in enumerate(S1_BANDS):
            v = fake_values(b, month, x, y).astype(np.float32)
            out["s1"][k] = np.where(band_masked(b, x, y), np.nan, v)
    return out


def inline_graph(expr: dict[str, Any]) -> Any:
    """A serialized expression ({"result", "values"}) with every valueReference inlined."""
    values = expr.get("values", {})

    def res(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"valueReference"}:
                return res(values[node["valueReference"]])
            fdv = node.get("functionDefinitionValue")
            if isinstance(fdv, dict) and isinstance(fdv.get("body"), str):
                body = res(values[fdv["body"]])
                return {"functionDefinitionValue": {**fdv, "body": body}}
            return {k: res(v) for k, v in node.items()}
        if isinstance(node, list):
            return [res(v) for v in node]
        return node

    if "result" in expr:
        return res(values[expr["result"]])
    return res(expr)


def find_calls(tree: Any, function_name: str) -> list[dict[str, Any]]:
    """Arguments of every invocation of ``function_name`` in an inlined graph."""
    out: list[dict[str, Any]] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            fiv = node.get("functionInvocationValue")
            if isinstance(fiv, dict) and fiv.get("functionName") == function_name:
                out.append(fiv.get("arguments", {}))
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(tree)
    return out


def constant(node: Any) -> Any:
    """The constant value of an inlined argument node (or None)."""
    return node.get("constantValue") if isinstance(node, dict) else None


def literal(node: Any) -> Any:
    """The Python value of a constant argument node: ``constantValue``, an ``arrayValue`` of
    constants (a list), or an ``Image.constant`` of one (None otherwise)."""
    if not isinstance(node, dict):
        return None
    if "constantValue" in node:
        return node["constantValue"]
    if "arrayValue" in node:
        return [literal(v) for v in node["arrayValue"].get("values", [])]
    fiv = node.get("functionInvocationValue")
    if isinstance(fiv, dict) and fiv.get("functionName") == "Image.constant":
        return literal(fiv.get("arguments", {}).get("value"))
    return None


def walk_graph(expr: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(function names, ImageCollection ids, date strings) found in a serialized expression."""
    tree = inline_graph(expr)
    funcs: list[str] = []
    dates: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            fiv = node.get("functionInvocationValue")
            if isinstance(fiv, dict):
                funcs.append(fiv.get("functionName", ""))
            c = node.get("constantValue")
            if isinstance(c, str) and _DATE_RE.match(c):
                dates.append(c[:10])
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(tree)
    ids = [constant(a.get("id")) for a in find_calls(tree, "ImageCollection.load")]
    return funcs, [i for i in ids if isinstance(i, str)], dates


@_dataclass
class Fault:
    """One injected failure, consumed by the next computePixels (or value:compute) request.

    kind: an HTTP status ("429", "500", "503", "400", "403", ...) answered with Google's JSON
    error shape; "quota" (429 quota message); "memory" (400 user memory limit); "slow" (HTTP
    504 after ``delay_s``, beyond the client's timeout); "truncate" (half an NPY body with a
    consistent length); "drop" (half a body, full Content-Length, connection closed); "none"
    (answer normally; a placeholder).
    """

    kind: str
    message: str | None = None
    delay_s: float = 2.0
    endpoint: str = "computePixels"


@_dataclass
class FakeCounters:
    requests: int = 0  # computePixels requests (all, failed included)
    ok_requests: int = 0
    pixels: int = 0  # pixels of successful computePixels answers
    bytes: int = 0  # NPY bytes of successful answers
    value_requests: int = 0
    value_tags: list[str | None] = _field(default_factory=list)
    log: list[dict[str, Any]] = _field(default_factory=list)


class FakeEarthEngine(LoopbackService):
    """A fake Earth Engine REST server on 127.0.0.1 (random port) in a daemon thread.

    Serves the discovery document and algorithm list shipped in the ``ee`` wheel, answers
    ``image:computePixels`` from the request (collections, month, bands, exact grid; values from
    :func:`fake_values`) and ``value:compute`` for the per-month scene-count dictionary.

    Args:
        scenes: month -> {"L2A": n, "L1C": n, "S1": n}; default 5 / 5 / 3 for every month.
            Optional "L2A_matched" / "L1C_matched": how many of them have a cloud layer (the
            rest are dropped by the recipe's inner join; default all). A composite of a
            product with no usable scene fails with Earth Engine's band-less 400 unless the
            expression merges a placeholder image into the collection.
        masked_form: how masked pixels are encoded when the expression does not unmask them:
            "zero" (0 values: what Earth Engine's NPY output does), "nan" (NaN values),
            "mask_fields" (extra uint8 ``<band>_mask`` fields, values 0). Masks are per band
            (:func:`band_masked`, :func:`edge_zone`).
        value_dtype: numpy dtype of value fields ("<f4", "<f8"); counts are ``count_dtype``.
        max_request_pixels: bigger requests -> 400 "User memory limit exceeded."
        cheap: answer constant-per-band arrays (benchmarks; skips the value function).
        restricted_after: once this many computePixels requests have succeeded, every
            response (that one included) carries Earth Engine's restricted-mode header
            ``x-earth-engine-quota-status: parallelism_restricted=true`` and stays HTTP 200, as
            for a noncommercial project over its compute quota.
        archive: a local scene archive: the fake then *evaluates* every expression over that
            archive's scenes (:mod:`tests.fake_ee_eval`) instead of answering the known-answer
            function; ``scenes``, ``masked_form`` and ``cheap`` do not apply.
    """

    def __init__(
        self,
        scenes: Callable[[str], dict[str, int]] | None = None,
        masked_form: str = "zero",
        value_dtype: str = "<f4",
        count_dtype: str = "u1",
        max_request_pixels: int | None = None,
        cheap: bool = False,
        restricted_after: int | None = None,
        archive: str | _os.PathLike[str] | None = None,
    ) -> None:
        import ee

        from tests.fake_ee_eval import Archive

        base = _os.path.dirname(ee.__file__)
        with open(_os.path.join(base, "tests", "cloud_api_discovery_document.json"), "rb") as f:
            self._discovery = f.read()
        with open(_os.path.join(base, "tests", "algorithms.json"), "rb") as f:
            self._algorithms = f.read()
        self.scenes = scenes or (lambda month: {"L2A": 5, "L1C": 5, "S1": 3})
        self.masked_form = masked_form
        self.value_dtype = value_dtype
        self.count_dtype = count_dtype
        self.max_request_pixels = max_request_pixels
        self.cheap = cheap
        self.restricted_after = restricted_after
        self.archive = Archive(archive) if archive is not None else None
        #: API versions the client's discovery requests asked for, and the request paths seen
        self.discovery_versions: list[str] = []
        self.paths: list[str] = []
        #: seconds the discovery answer is held back (an Earth Engine that does not answer)
        self.discovery_delay_s = 0.0
        self.faults: list[Fault] = []
        self.persistent_fault: Fault | None = None
        self.counters = FakeCounters()
        self._lock = _threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ---- counters (start / stop / url: LoopbackService)
    def reset_counters(self) -> None:
        with self._lock:
            self.counters = FakeCounters()

    # ---- HTTP plumbing
    def _send(self, h: BaseHTTPRequestHandler, code: int, body: bytes,
              ctype: str = "application/json", declared_len: int | None = None) -> None:
        try:
            h.send_response(code)
            h.send_header("Content-Type", ctype)
            n = len(body) if declared_len is None else declared_len
            h.send_header("Content-Length", str(n))
            with self._lock:
                restricted = (self.restricted_after is not None
                              and self.counters.ok_requests >= self.restricted_after)
            if restricted:
                h.send_header("x-earth-engine-quota-status", "parallelism_restricted=true")
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _error(self, h: BaseHTTPRequestHandler, code: int, message: str) -> None:
        status = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
                  503: "UNAVAILABLE", 404: "NOT_FOUND"}.get(code, "UNKNOWN")
        body = _json.dumps({"error": {"code": code, "message": message, "status": status}})
        self._send(h, code, body.encode())

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        path = h.path.split("?")[0]
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            if method == "GET" and path.endswith("/$discovery/rest"):
                # the document of the version the client asks for (the wheel ships v1alpha's;
                # earthengine-api calls v1), so request paths are what real Earth Engine sees
                version = (parse_qs(urlparse(h.path).query).get("version") or ["v1alpha"])[0]
                with self._lock:
                    self.discovery_versions.append(version)
                if self.discovery_delay_s:
                    _time.sleep(self.discovery_delay_s)
                return self._send(h, 200, self._discovery.replace(b"v1alpha", version.encode()))
            with self._lock:
                self.paths.append(path)
            if method == "GET" and path.endswith("/algorithms"):
                return self._send(h, 200, self._algorithms)
            if method == "POST" and path.endswith("/image:computePixels"):
                return self._compute_pixels(h, _json.loads(raw or b"{}"))
            if method == "POST" and path.endswith("/value:compute"):
                return self._value_compute(h, _json.loads(raw or b"{}"))
            return self._error(h, 404, f"fake EE: {method} {path} is not supported here")
        except Exception as exc:  # a fake must always answer
            return self._error(h, 400, f"fake EE could not handle the request: {exc}")

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for i, f in enumerate(self.faults):
                if f.endpoint == endpoint:
                    return self.faults.pop(i)
            if self.persistent_fault and self.persistent_fault.endpoint == endpoint:
                return self.persistent_fault
        return None

    def _apply_fault(self, h: BaseHTTPRequestHandler, f: Fault) -> bool:
        """Answer with the fault; True if the request is finished (not slow)."""
        k = f.kind
        defaults = {
            "429": "Too many concurrent aggregations.",
            "500": "An internal error has occurred.",
            "503": "The service is currently unavailable.",
            "400": "Image.select: Pattern 'B99' did not match any bands.",
            "403": "Permission denied: Earth Engine API not enabled for project test.",
        }
        if k.isdigit():
            self._error(h, int(k), f.message or defaults.get(k, "fake EE fault"))
        elif k == "quota":
            self._error(h, 429, f.message or "Quota exceeded: Earth Engine quota exhausted "
                        "for project test (RESOURCE_EXHAUSTED).")
        elif k == "memory":
            self._error(h, 400, f.message or "User memory limit exceeded.")
        elif k == "slow":
            # the client has usually given up by now: answer an error so that a late reply never
            # counts as a served request (counters stay per test)
            _time.sleep(f.delay_s)
            self._error(h, 504, "fake EE: deadline exceeded (slow fault)")
        else:
            return False
        return True

    # ---- endpoints
    def _value_compute(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        with self._lock:
            self.counters.value_requests += 1
            self.counters.value_tags.append(body.get("workloadTag"))
        f = self._take_fault("value")
        if f is not None and self._apply_fault(h, f):
            return
        if self.archive is not None:
            return self._evaluated_value(h, body)
        funcs, ids, dates = walk_graph(body.get("expression", {}))
        month = _check_month(dates)
        if (S1_GRD in ids or S1_GRD_FLOAT in ids) and any(fn.endswith(".size") for fn in funcs):
            sc = self.scenes(month)
            joined = "Join.saveFirst" in funcs
            result = {k: self._usable(sc, k, joined) for k in ("L2A", "L1C")}
            result["S1"] = sc.get("S1", 0)
            if "Join.inverted" in funcs:  # L1C granules without an L2A counterpart
                result["L1C_only"] = int(sc.get("L1C_only", 0))
            return self._send(h, 200, _json.dumps({"result": result}).encode())
        return self._error(h, 400, "fake EE: only the scene-count dictionary is supported")

    @staticmethod
    def _usable(sc: dict[str, int], product: str, joined: bool) -> int:
        """Scenes of ``product`` left after the cloud-layer join (``<product>_matched``, default
        all of them) if the expression joins, else the raw count."""
        return int(sc.get(f"{product}_matched", sc.get(product, 0))) if joined else int(
            sc.get(product, 0))

    def _compute_pixels(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        with self._lock:
            self.counters.requests += 1
        funcs, ids, dates = walk_graph(body.get("expression", {}))
        grid = body.get("grid") or {}
        bands = body.get("bandIds") or []
        entry = {"grid": grid, "bands": list(bands), "ids": sorted(set(ids)), "dates": dates,
                 "ok": False, "workloadTag": body.get("workloadTag")}
        with self._lock:
            self.counters.log.append(entry)
        f = self._take_fault("computePixels")
        if f is not None and self._apply_fault(h, f):
            return
        if body.get("fileFormat") != "NPY":
            return self._error(h, 400, f"fake EE: fileFormat {body.get('fileFormat')!r} != NPY")
        if not grid.get("affineTransform") or not grid.get("crsCode") or "region" in body:
            return self._error(h, 400, "fake EE: an exact grid (affineTransform + crsCode + "
                               "dimensions) is required")
        if not bands:
            return self._error(h, 400, "fake EE: bandIds required")
        if self.archive is not None:
            return self._evaluated_pixels(h, body, entry, f)
        month = _check_month(dates)
        w, hh = int(grid["dimensions"]["width"]), int(grid["dimensions"]["height"])
        vdt, cdt = np.dtype(self.value_dtype), np.dtype(self.count_dtype)
        fields = []
        for b in bands:
            fields.append((b, cdt if b.endswith("_count") else vdt))
            if self.masked_form == "mask_fields":
                fields.append((f"{b}_mask", np.dtype("u1")))
        dtype = np.dtype(fields)
        # Earth Engine counts one mask byte per band and pixel on top of the values
        n_mask = 0 if self.masked_form == "mask_fields" else len(bands)
        nbytes = (dtype.itemsize + n_mask) * w * hh
        if nbytes > MAX_REQUEST_BYTES:
            return self._error(h, 400, f"Total request size ({nbytes} bytes) must be less than "
                               f"or equal to {MAX_REQUEST_BYTES} bytes.")
        if self.max_request_pixels is not None and w * hh > self.max_request_pixels:
            return self._error(h, 400, "User memory limit exceeded.")
        product = "L2A" if S2_L2A in ids else "L1C" if S2_L1C in ids else None
        sc = self.scenes(month)
        n_s2 = 0 if product is None else self._usable(sc, product, "Join.saveFirst" in funcs)
        if product is not None and n_s2 == 0 and "ImageCollection.merge" not in funcs:
            # Earth Engine: the mean of an empty collection has no bands, and the reflectance
            # scaling (Image.divide) then fails
            return self._error(h, 400, "Image.divide: If one image has no bands, the other must "
                               "also have no bands.")
        s1_id = S1_GRD_FLOAT if S1_GRD_FLOAT in ids else S1_GRD if S1_GRD in ids else None
        s2_avail = n_s2 > 0
        s1_avail = s1_id is not None and sc.get("S1", 0) > 0
        arr = np.zeros((hh, w), dtype=dtype)
        if self.cheap:
            for b in bands:
                arr[b] = 1
        else:
            self._fill(arr, bands, month, grid, product, s2_avail, s1_avail, s1_id,
                       recipe_traits(body.get("expression", {})))
        self._answer_npy(h, arr, entry, f)

    def _answer_npy(self, h: BaseHTTPRequestHandler, arr: np.ndarray, entry: dict[str, Any],
                    f: Fault | None) -> None:
        """Send a computePixels answer (NPY of ``arr``), or half of it under a ``truncate`` /
        ``drop`` fault; a full answer is counted as served."""
        buf = _io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        data = buf.getvalue()
        if f is not None and f.kind == "truncate":
            return self._send(h, 200, data[: len(data) // 2], "application/octet-stream")
        if f is not None and f.kind == "drop":
            # announce the full length, send half, close: a short read for the client
            self._send(h, 200, data[: len(data) // 2], "application/octet-stream",
                       declared_len=len(data))
            h.close_connection = True
            return
        with self._lock:
            self.counters.ok_requests += 1
            self.counters.pixels += arr.size
            self.counters.bytes += len(data)
            entry["ok"] = True
        self._send(h, 200, data, "application/octet-stream")

    def _evaluated_value(self, h: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        from tests.fake_ee_eval import EEError, compute_value

        assert self.archive is not None
        try:
            result = compute_value(self.archive, body.get("expression", {}), None)
        except EEError as exc:
            return self._error(h, exc.code, str(exc))
        return self._send(h, 200, _json.dumps({"result": result}).encode())

    def _evaluated_pixels(self, h: BaseHTTPRequestHandler, body: dict[str, Any],
                          entry: dict[str, Any], f: Fault | None) -> None:
        """computePixels by evaluation: each band in its own dtype (float32 for ``toFloat``,
        uint8 / uint16 for the integer casts), masked pixels as 0, as Earth Engine's NPY."""
        from tests.fake_ee_eval import EEError, compute_pixels

        assert self.archive is not None
        grid = body["grid"]
        w, hh = int(grid["dimensions"]["width"]), int(grid["dimensions"]["height"])
        if self.max_request_pixels is not None and w * hh > self.max_request_pixels:
            return self._error(h, 400, "User memory limit exceeded.")
        try:
            names, bands = compute_pixels(self.archive, body.get("expression", {}), grid,
                                          list(body["bandIds"]))
        except EEError as exc:
            return self._error(h, exc.code, str(exc))
        kinds = {"float": "<f4", "uint8": "u1", "uint16": "<u2", "int": "<i4"}
        dtype = np.dtype([(n, kinds[bands[n].dtype]) for n in names])
        nbytes = (dtype.itemsize + len(names)) * w * hh
        if nbytes > MAX_REQUEST_BYTES:
            return self._error(h, 400, f"Total request size ({nbytes} bytes) must be less than "
                               f"or equal to {MAX_REQUEST_BYTES} bytes.")
        arr = np.zeros((hh, w), dtype=dtype)
        for n in names:
            arr[n] = np.where(bands[n].mask, bands[n].values, 0)
        self._answer_npy(h, arr, entry, f)

    def _fill(self, arr: np.ndarray, bands: list[str], month: str, grid: dict[str, Any],
              product: str | None, s2_avail: bool, s1_avail: bool, s1_id: str | None,
              traits: dict[str, Any]) -> None:
        """Values of a response as Earth Engine would compute them for the recipe the
        expression encodes (``traits``): the known-answer function where everything is right,
        doubled counts without one-observation-per-datatake/pass, scene edges counted without
        the edge mask, linear power from S1_GRD_FLOAT without the log10, and masked pixels as
        the expression's unmask value, else as ``masked_form`` says (Earth Engine: 0)."""
        hh, w = arr.shape
        x, y = grid_centres(grid)
        edge, overlap = edge_zone(x, y), overlap_zone(x, y)
        s2c = fake_values("s2_count", month, x, y) if s2_avail else np.zeros((hh, w))
        if traits["edge_mask"]:
            s2c = np.where(edge, 0, s2c)
        if not traits["s2_dedup"]:
            s2c = np.where(overlap, 2 * s2c, s2c)
        s1c = fake_values("s1_count", month, x, y) if s1_avail else np.zeros((hh, w))
        if not traits["s1_dedup"]:
            s1c = np.where(overlap, 2 * s1c, s1c)
        vdt = np.dtype(self.value_dtype)
        for b in bands:
            if b == "s2_count":
                v, valid = s2c, np.ones((hh, w), bool)
            elif b == "s1_count":
                v, valid = s1c, np.ones((hh, w), bool)
            elif b in S2_BANDS:
                v = fake_values(b, month, x, y, product or "L2A")
                valid = (s2c > 0) & ~band_masked(b, x, y)
                if b in ("B8A", "B9"):
                    valid &= ~edge
            else:
                v = fake_values(b, month, x, y)
                if s1_id == S1_GRD_FLOAT and not traits["log10"]:
                    v = 10.0 ** (v / 10.0)  # the linear mean was never taken back to dB
                valid = (s1c > 0) & ~band_masked(b, x, y)
            if traits["fill"] is not None:
                v = np.where(valid, v, traits["fill"])
            elif self.masked_form == "nan" and vdt.kind == "f":
                v = np.where(valid, v, np.nan)
            elif self.masked_form in ("zero", "mask_fields"):
                v = np.where(valid, v, 0)
            arr[b] = v
            if self.masked_form == "mask_fields":
                arr[f"{b}_mask"] = valid if traits["fill"] is None else True


def recipe_traits(expr: dict[str, Any]) -> dict[str, Any]:
    """What the fake needs to know of a composite expression: the non-zero ``Image.unmask``
    value (None: masked pixels stay masked), whether scene edges are masked (``Image.mask`` of
    a B8A or B9 selection), whether S2 keeps one observation per datatake and S1 one per
    pass (``ImageCollection.mosaic`` per DATATAKE_IDENTIFIER / platform + orbitNumber_start)
    and whether the S1 mean goes through ``Image.log10``."""
    tree = inline_graph(expr)
    text = _json.dumps(tree)
    fills = [literal(a.get("value")) for a in find_calls(tree, "Image.unmask")]
    fill = next((float(v) for v in fills if isinstance(v, int | float) and v != 0), None)
    edge = False
    for a in find_calls(tree, "Image.mask"):
        sel = find_calls({"x": a.get("image")}, "Image.select")
        names = [literal(s.get("bandSelectors")) for s in sel[:1]]
        edge = edge or any(isinstance(n, list) and ("B8A" in n or "B9" in n) for n in names)
    mosaic = bool(find_calls(tree, "ImageCollection.mosaic"))
    return {
        "fill": fill,
        "edge_mask": edge,
        "s2_dedup": mosaic and '"DATATAKE_IDENTIFIER"' in text,
        "s1_dedup": mosaic and '"orbitNumber_start"' in text and '"platform_number"' in text,
        "log10": bool(find_calls(tree, "Image.log10")),
    }


def _check_month(dates: list[str]) -> str:
    """The calendar month of a [first day, first day of next month) filterDate range."""
    if len(set(dates)) != 2:
        raise ValueError(f"expected one month's filterDate range, got dates {sorted(set(dates))}")
    d0, d1 = sorted(set(dates))
    a = _dt.date.fromisoformat(d0)
    b = _dt.date.fromisoformat(d1)
    nxt = _dt.date(a.year + (a.month == 12), a.month % 12 + 1, 1)
    if a.day != 1 or b != nxt:
        raise ValueError(f"date range {d0}..{d1} is not one calendar month")
    return f"{a.year:04d}-{a.month:02d}"


@_contextmanager
def evaluating_fake(archive: str | _os.PathLike[str]) -> Iterator[FakeEarthEngine]:
    """A started :class:`FakeEarthEngine` evaluating over ``archive``, with the client's
    deprecated-assets fetch switched off for its lifetime (module-scoped fixtures)."""
    import ee.deprecation

    orig = ee.deprecation._FetchDataCatalogStac
    ee.deprecation._FetchDataCatalogStac = lambda: {}
    server = FakeEarthEngine(archive=archive).start()
    try:
        yield server
    finally:
        server.stop()
        ee.deprecation._FetchDataCatalogStac = orig


def patch_ee_offline(monkeypatch: Any) -> None:
    """Stop ``ee`` from fetching the deprecated-assets catalog from Google's storage host."""
    import ee.deprecation

    monkeypatch.setattr(ee.deprecation, "_FetchDataCatalogStac", lambda: {})
