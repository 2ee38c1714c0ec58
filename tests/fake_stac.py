"""Loopback STAC servers for the STAC source tests: a STAC API (landing page, conformance,
collections, item search by bbox / datetime / collections / query with paging) and an HTTP file
server with Range requests for the COGs and static catalogues, both on 127.0.0.1, both
injecting faults and counting requests and bytes.

GDAL reads the COGs exactly as from S3 or Azure (``/vsicurl/`` range requests); pystac-client
searches the API as it would Earth Search.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from tests.loopback import LoopbackService

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/item-search",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/collections",
]


@dataclass
class Fault:
    """An injected failure: requests whose path starts with ``prefix`` get ``kind`` ("429",
    "500", "503", "403", "404": that status with a JSON / text body; "slow": an answer after
    ``delay_s``; "truncate": the file's first half, announced as the whole file) ``times``
    times (-1 = always); ``contains`` narrows it to paths holding that text."""

    prefix: str
    kind: str
    times: int = 1
    delay_s: float = 3.0
    contains: str = ""  # and the path holds this (e.g. "/L1C/": one product's files only)
    retry_after_s: int | None = None  # a Retry-After header on the status answer


@dataclass
class Counters:
    requests: int = 0
    search_requests: int = 0
    file_requests: int = 0
    bytes: int = 0  # body bytes of file answers
    files_in_flight: int = 0
    max_files_in_flight: int = 0  # most file requests answered at once (overlapped reads)
    log: list[dict[str, Any]] = field(default_factory=list)


class FakeStac(LoopbackService):
    """Serves ``root`` under ``/files/`` and a STAC API over ``items`` under ``/api/``.

    Args:
        root: folder whose files are served (COGs, a static catalogue).
        items: STAC item dicts (their asset hrefs should point at this server: see
            :meth:`items_from_catalog`); each needs ``collection``.
        page_size: the API's maximum page size (``limit`` is capped to it).
        latency_s: delay before every file answer (an object store's first-byte latency;
            what overlapping reads hide).
    """

    def __init__(self, root: Path, items: list[dict[str, Any]] | None = None,
                 page_size: int = 100, latency_s: float = 0.0) -> None:
        self.root = Path(root)
        self.latency_s = float(latency_s)
        self.items = list(items or [])
        #: collection ids the API has (empty: those of ``items``)
        self.collections: set[str] = set()
        self.page_size = int(page_size)
        self.faults: list[Fault] = []
        self.counters = Counters()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        # every URL of this instance starts with its own path segment: GDAL caches /vsicurl/
        # reads per URL for the life of the process, so a later server that reused the port
        # (another test on the same xdist worker) must not be answered from that cache
        self._token = uuid.uuid4().hex[:12]

    # ---- addresses (start / stop: LoopbackService)
    @property
    def url(self) -> str:
        return f"{super().url}/{self._token}"

    @property
    def api(self) -> str:
        return f"{self.url}/api"

    def file_url(self, path: Path | str) -> str:
        rel = Path(path).resolve().relative_to(self.root.resolve())
        return f"{self.url}/files/{rel.as_posix()}"

    def items_from_catalog(self, catalog: Path) -> list[dict[str, Any]]:
        """The items of a static catalogue under ``root``, asset hrefs rewritten to this
        server's ``/files/`` URLs (what a provider's API answers)."""
        import pystac

        out = []
        for item in pystac.Catalog.from_file(str(catalog)).get_items(recursive=True):
            d = item.to_dict(include_self_link=False)
            d["collection"] = item.collection_id
            for k, a in item.assets.items():
                d["assets"][k]["href"] = self.file_url(a.get_absolute_href() or a.href)
            d["links"] = []
            out.append(d)
        return out

    # ---- plumbing
    def _fault(self, path: str) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if path.startswith(f.prefix) and f.contains in path and f.times != 0:
                    if f.times > 0:
                        f.times -= 1
                    return f
        return None

    def _send(self, h: BaseHTTPRequestHandler, code: int, body: bytes, ctype: str,
              headers: dict[str, str] | None = None, head: bool = False,
              declared: int | None = None) -> None:
        try:
            h.send_response(code)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body) if declared is None else declared))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            if not head:
                h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _json(self, h: BaseHTTPRequestHandler, code: int, doc: Any, head: bool = False,
              headers: dict[str, str] | None = None) -> None:
        ctype = "application/geo+json" if isinstance(doc, dict) and doc.get(
            "type") == "FeatureCollection" else "application/json"
        self._send(h, code, json.dumps(doc).encode(), ctype, head=head, headers=headers)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urlparse(h.path)
        path = unquote(parsed.path)
        if path.startswith(f"/{self._token}/"):  # this instance's URLs (see ``url``)
            path = path[len(self._token) + 1:]
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        entry: dict[str, Any] = {"method": method, "path": path, "query": parsed.query,
                                 "range": h.headers.get("Range"), "status": 200, "bytes": 0}
        with self._lock:
            self.counters.requests += 1
            self.counters.log.append(entry)
        f = self._fault(path)
        if f is not None:
            if f.kind == "slow":
                time.sleep(f.delay_s)
            elif f.kind.isdigit():
                entry["status"] = int(f.kind)
                msg = {"429": "Too Many Requests", "500": "Internal Server Error",
                       "503": "Service Unavailable", "403": "AccessDenied",
                       "404": "NoSuchKey"}.get(f.kind, "error")
                extra = ({"Retry-After": str(f.retry_after_s)}
                         if f.retry_after_s is not None else None)
                return self._json(h, int(f.kind), {"code": msg, "description": msg},
                                  head=method == "HEAD", headers=extra)
        try:
            if path.startswith("/files/"):
                return self._file(h, path[len("/files/"):], method, entry, f)
            if path.rstrip("/") == "/api":
                return self._json(h, 200, self._landing())
            if path == "/api/conformance":
                return self._json(h, 200, {"conformsTo": CONFORMANCE})
            if path == "/api/collections":
                ids = sorted(self._collection_ids())
                return self._json(h, 200, {"collections": [self._collection(c) for c in ids],
                                           "links": []})
            if path.startswith("/api/collections/") and path.count("/") == 3:
                cid = path.rsplit("/", 1)[1]
                if cid not in self._collection_ids():
                    # Earth Search's answer for an unknown collection
                    return self._json(h, 404, {"code": "NotFoundError",
                                               "description": f"Collection {cid} not found"})
                return self._json(h, 200, self._collection(cid))
            if path == "/api/search":
                with self._lock:
                    self.counters.search_requests += 1
                if method == "POST":
                    params = json.loads(raw or b"{}")
                else:
                    q = {k: v[0] for k, v in parse_qs(parsed.query).items()}
                    params = dict(q)
                    if "collections" in q:
                        params["collections"] = q["collections"].split(",")
                    if "bbox" in q:
                        params["bbox"] = [float(v) for v in q["bbox"].split(",")]
                return self._json(h, 200, self._search(params))
            entry["status"] = 404
            return self._json(h, 404, {"code": "NotFound", "description": path},
                              head=method == "HEAD")
        except ValueError as exc:
            entry["status"] = 400
            return self._json(h, 400, {"code": "BadRequest", "description": str(exc)},
                              head=method == "HEAD")

    def _collection_ids(self) -> set[str]:
        """The collections the API has: ``collections`` when set (a real API has a collection
        whatever a test's items hold), else those of the items."""
        return set(self.collections) or {str(it.get("collection")) for it in self.items}

    def _collection(self, cid: str) -> dict[str, Any]:
        """A valid STAC Collection document (what pystac-client parses)."""
        base = self.api
        return {"type": "Collection", "stac_version": "1.0.0", "id": cid,
                "description": f"{cid} (fake)", "license": "proprietary",
                "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                           "temporal": {"interval": [[None, None]]}},
                "links": [{"rel": "self", "href": f"{base}/collections/{cid}"},
                          {"rel": "items", "href": f"{base}/collections/{cid}/items"}]}

    def _landing(self) -> dict[str, Any]:
        base = self.api
        return {
            "type": "Catalog", "id": "fake-stac", "stac_version": "1.0.0",
            "description": "loopback STAC API", "conformsTo": CONFORMANCE,
            "links": [
                {"rel": "self", "href": f"{base}/", "type": "application/json"},
                {"rel": "root", "href": f"{base}/", "type": "application/json"},
                {"rel": "conformance", "href": f"{base}/conformance"},
                {"rel": "data", "href": f"{base}/collections"},
                {"rel": "search", "href": f"{base}/search", "type": "application/geo+json",
                 "method": "GET"},
                {"rel": "search", "href": f"{base}/search", "type": "application/geo+json",
                 "method": "POST"},
            ],
        }

    def _search(self, p: dict[str, Any]) -> dict[str, Any]:
        if "intersects" in p:
            raise ValueError("intersects is not supported by this fake: use bbox")
        cols = p.get("collections")
        bbox = p.get("bbox")
        start = end = None
        if p.get("datetime"):
            a, _, b = str(p["datetime"]).partition("/")
            start = a if a not in ("", "..") else None
            end = b if b not in ("", "..") else None
        query = p.get("query") or {}
        hits = []
        for it in sorted(self.items, key=lambda d: (d["properties"]["datetime"], d["id"])):
            if cols and it.get("collection") not in cols:
                continue
            if bbox and not _overlaps(it.get("bbox"), bbox):
                continue
            t = _instant(it["properties"]["datetime"])
            if (start and t < _instant(start)) or (end and t > _instant(end)):
                continue
            if not all(_match(it["properties"].get(k), c) for k, c in query.items()):
                continue
            hits.append(it)
        limit = min(int(p.get("limit") or 10), self.page_size)
        offset = int(p.get("token") or 0)
        page = hits[offset:offset + limit]
        links = []
        if offset + limit < len(hits):
            body = {k: v for k, v in p.items() if k != "token"} | {"token": str(offset + limit)}
            links.append({"rel": "next", "href": f"{self.api}/search", "method": "POST",
                          "body": body, "merge": False, "type": "application/geo+json"})
        return {"type": "FeatureCollection", "features": page, "links": links,
                "numberMatched": len(hits), "numberReturned": len(page)}

    def _file(self, h: BaseHTTPRequestHandler, rel: str, method: str, entry: dict[str, Any],
              f: Fault | None) -> None:
        p = (self.root / rel).resolve()
        if self.root.resolve() not in p.parents or not p.is_file():
            entry["status"] = 404
            return self._send(h, 404, b"NoSuchKey", "text/plain", head=method == "HEAD")
        with self._lock:
            self.counters.file_requests += 1
            self.counters.files_in_flight += 1
            self.counters.max_files_in_flight = max(self.counters.max_files_in_flight,
                                                    self.counters.files_in_flight)
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            self._answer_file(h, p, rel, method, entry, f)
        finally:
            with self._lock:
                self.counters.files_in_flight -= 1

    def _answer_file(self, h: BaseHTTPRequestHandler, p: Path, rel: str, method: str,
                     entry: dict[str, Any], f: Fault | None) -> None:
        data = p.read_bytes()
        if f is not None and f.kind == "truncate":
            data = data[: len(data) // 2]
        size = len(data)
        ctype = "application/json" if rel.endswith(".json") else "image/tiff"
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes="):
            first = rng[len("bytes="):].split(",")[0]
            a, _, b = first.partition("-")
            lo = int(a) if a else max(0, size - int(b))
            hi = min(int(b), size - 1) if (a and b) else size - 1
            if lo >= size:
                entry["status"] = 416
                return self._send(h, 416, b"", ctype, {"Content-Range": f"bytes */{size}"})
            body = data[lo:hi + 1]
            entry.update(status=206, bytes=0 if method == "HEAD" else len(body))
            with self._lock:
                self.counters.bytes += entry["bytes"]
            return self._send(h, 206, body, ctype, {"Content-Range": f"bytes {lo}-{hi}/{size}",
                                                    "Accept-Ranges": "bytes"},
                              head=method == "HEAD")
        entry["bytes"] = 0 if method == "HEAD" else size
        with self._lock:
            self.counters.bytes += entry["bytes"]
        return self._send(h, 200, data, ctype, {"Accept-Ranges": "bytes"},
                          head=method == "HEAD")


def _instant(s: str) -> Any:
    """An RFC 3339 timestamp as an aware datetime (APIs compare instants, not strings:
    ``...23:59:59.6Z`` is after ``...23:59:59Z``)."""
    import datetime as dt

    return dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))


def _overlaps(a: Any, b: Any) -> bool:
    if not a:
        return True
    return not (a[2] < b[0] or a[0] > b[2] or a[3] < b[1] or a[1] > b[3])


def _match(value: Any, cond: Any) -> bool:
    if not isinstance(cond, dict):
        return bool(value == cond)
    ops = {"eq": lambda x, y: x == y, "neq": lambda x, y: x != y, "lt": lambda x, y: x < y,
           "lte": lambda x, y: x <= y, "gt": lambda x, y: x > y, "gte": lambda x, y: x >= y,
           "in": lambda x, y: x in y}
    return value is not None and all(ops[k](value, v) for k, v in cond.items())
