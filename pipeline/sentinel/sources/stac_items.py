"""STAC items -> scenes of the STAC source (pure: item dicts in, scene records out, no I/O).

Provider conventions of :mod:`pipeline.sentinel.sources.stac_profiles` are applied here: asset
keys, the ``raster:bands`` scale check, the processing-baseline offset (from the item's
properties or its ``raster:bands``), one processing per acquisition (the newest baseline),
L2A <-> L1C pairing (the item's ``derived_from`` link, else by item id, else by acquisition),
sun angles (``view:``
or ``s2:mean_solar_*``), S1 orbit fields and calibration, and the STAC API ``query`` semantics
used to filter static catalogues like an API would.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import HrefRefusedError, SourceError
from pipeline.io.scenes import L1C_FILE_BANDS, L2A_FILE_BANDS, SCL_FILE, S1Scene, S2Scene
from pipeline.sentinel.sources.stac_profiles import StacProfile

log = logging.getLogger(__name__)

#: Reflectance scale every profile's S2 DNs must have (DN / 10000).
S2_SCALE = 1e-4
#: Baseline >= 04.00 DNs carry this offset (BOA_ADD_OFFSET / RADIO_ADD_OFFSET).
BASELINE_OFFSET_DN = -1000.0


def _private_host(host: str) -> bool:
    """True for localhost and IP literals in loopback, private, link-local (cloud metadata,
    169.254.169.254), reserved, multicast or unspecified ranges. Host names are not resolved
    (a DNS name is taken as public)."""
    import ipaddress

    h = host.strip("[]").lower()
    if h in ("localhost", "localhost.localdomain") or h.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        return False
    return bool(ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
                or ip.is_multicast or ip.is_unspecified)


def href_checker(catalog: str, cloud_schemes: tuple[str, ...] = (),
                 allow_hosts: tuple[str, ...] = ()) -> Callable[[str], str]:
    """The href policy of a catalogue: a function that returns an asset href unchanged or
    raises :class:`~pipeline.errors.HrefRefusedError` saying why.

    * GDAL virtual paths (``/vsicurl/``, ``/vsis3/``, ``/vsizip/`` ...) are never taken from a
      catalogue (the pipeline chooses how a file is read, with which credentials).
    * ``http(s)`` hrefs must name a public host (not localhost, not a loopback, private,
      link-local (cloud metadata) or reserved IP), the catalogue's own host, or one of
      ``allow_hosts`` (``sentinel.stac.allow_hosts``; ``"*"`` allows any).
    * Cloud schemes (``s3://``) only where the provider profile names them.
    * Local paths and ``file://`` only in a static catalogue on disk, and only inside its
      folder (after resolving ``..``).
    """
    import os
    from urllib.parse import urlparse

    remote = "://" in catalog
    own = (urlparse(catalog).hostname or "").lower() if remote else ""
    root = "" if remote else os.path.normpath(os.path.abspath(os.path.dirname(catalog)))

    def check(href: str) -> str:
        h = str(href)
        if h.startswith("/vsi"):
            raise HrefRefusedError(f"asset href {h!r} is a GDAL virtual path: the catalogue may "
                                   "not choose how files are read")
        u = urlparse(h)
        scheme = u.scheme.lower()
        if scheme in ("http", "https"):
            host = (u.hostname or "").lower()
            if "*" in allow_hosts or (own and host == own) or host in allow_hosts \
                    or u.netloc.lower() in allow_hosts or not _private_host(host):
                return h
            raise HrefRefusedError(f"asset href {h!r} points at the non-public host {host!r}: "
                                   "add it to sentinel.stac.allow_hosts if you trust it")
        if scheme in cloud_schemes:
            return h
        if scheme in ("", "file") or len(scheme) == 1:  # a path (C: is a drive letter)
            if remote:
                raise HrefRefusedError(f"asset href {h!r} is a local path in a remote "
                                       f"catalogue ({catalog}): assets must be http(s) URLs")
            path = os.path.normpath(os.path.abspath(u.path if scheme == "file" else h))
            if os.path.commonpath([path, root]) != root:
                raise HrefRefusedError(f"asset href {h!r} leaves the catalogue's folder {root}")
            return h
        raise HrefRefusedError(f"asset href {h!r} uses the scheme {scheme!r}, which this "
                               "provider profile does not read (allowed: http, https"
                               f"{', ' + ', '.join(cloud_schemes) if cloud_schemes else ''})")

    return check


def month_window(month: str) -> tuple[dt.datetime, dt.datetime]:
    """``YYYY-MM`` -> [first instant, first instant of the next month) (UTC, naive)."""
    y, m = (int(v) for v in month.split("-"))
    return dt.datetime(y, m, 1), dt.datetime(y + (m == 12), m % 12 + 1, 1)


#: Earth Search's item property: True when it removed the baseline >= 04.00 offset from the DNs.
EARTH_SEARCH_OFFSET_FLAG = "earthsearch:boa_offset_applied"


def processing_baseline(props: dict[str, Any]) -> float:
    """An item's processing baseline as a number (``05.10`` -> 5.1): ``s2:processing_baseline``
    (Earth Search, Planetary Computer) or ``processing:version`` (CDSE); 0 when neither."""
    raw = props.get("s2:processing_baseline") or props.get("processing:version") or "0"
    try:
        return float(str(raw))
    except ValueError:
        return 0.0


def baseline_offset(props: dict[str, Any], profile: StacProfile) -> float:
    """DN offset to add before dividing by 10000: 0 if the provider already removed the
    baseline >= 04.00 offset (``profile.offset_applied_property`` True) or the baseline is
    older; else -1000."""
    if profile.offset_applied_property and props.get(profile.offset_applied_property) is True:
        return 0.0
    return BASELINE_OFFSET_DN if processing_baseline(props) >= 4.0 else 0.0


def asset_scale_offset(asset: dict[str, Any]) -> tuple[Any, Any]:
    """``(scale, offset)`` an asset states (None where it states none): its first
    ``raster:bands`` entry (STAC 1.0, raster extension v1: Earth Search, Planetary Computer),
    else its own ``raster:scale`` / ``raster:offset`` fields (STAC 1.1, raster v2: CDSE)."""
    rb = (asset.get("raster:bands") or [{}])[0]
    scale = rb.get("scale", asset.get("raster:scale"))
    offset = rb.get("offset", asset.get("raster:offset"))
    return scale, offset


def item_offset_dn(item: dict[str, Any], keys: Iterable[str], profile: StacProfile,
                   forced_props: dict[str, Any] | None = None) -> float:
    """DN offset of an S2 item's band assets ``keys``: with ``profile.offset_rule ==
    "raster_bands"`` the offset the assets state (:func:`asset_scale_offset`) divided by
    their scale (Earth Search Collection 1 and CDSE: ``-0.1`` at ``0.0001`` is -1000 DN, the
    data keep it), else (or when no asset states one) :func:`baseline_offset` of its
    properties.

    Raises:
        SourceError: the band assets state different offsets (a mixed or broken item).
    """
    props = dict(item.get("properties", {})) | dict(forced_props or {})
    if props.get(EARTH_SEARCH_OFFSET_FLAG) is True:
        # Earth Search says it removed the offset from these DNs (its v1 sentinel-2-l2a), also
        # when the item is read under another profile: its raster:bands still state -0.1
        return 0.0
    if profile.offset_rule == "raster_bands":
        found = set()
        for key in keys:
            scale, offset = asset_scale_offset(item.get("assets", {}).get(key, {}))
            if offset is not None:
                found.add(round(float(offset) / float(scale or S2_SCALE), 6))
        if len(found) > 1:
            raise SourceError(
                f"STAC item {item.get('id')}: its band assets state different raster:bands "
                f"offsets {sorted(found)}: fix the catalogue or drop the item (s2_query)"
            )
        if found:
            return float(found.pop())
    return baseline_offset(props, profile)


#: The band whose coarsest overview decides whether an item's offset was already removed: dark
#: in SWIR are water, vegetation, shadow and snow, so most scenes hold many pixels whose
#: harmonised DN is far below 1000, which DNs that still carry the +1000 offset cannot be.
OFFSET_CHECK_BAND = "B12"


def dn_shows_offset_removed(dn: np.ndarray, below: float = 900.0,
                            min_fraction: float = 0.01, min_pixels: int = 1000) -> bool:
    """True when DNs that should still carry the baseline >= 04.00 offset (+1000) clearly do
    not: at least ``min_fraction`` of the valid pixels (finite, > 0) are below ``below``, i.e.
    a reflectance under -0.01 once the offset were removed, which Sen2Cor does not produce at
    that rate. False when the data cannot tell (too few pixels, a bright scene): the
    provider's flag is then trusted."""
    v = dn[np.isfinite(dn) & (dn > 0)]
    if v.size < min_pixels:
        return False
    return float(np.mean(v < below)) >= min_fraction


def item_time(item: dict[str, Any]) -> dt.datetime:
    props = item.get("properties", {})
    s = props.get("datetime") or props.get("start_datetime")
    if not s:
        raise SourceError(f"STAC item {item.get('id')!r} has no datetime: fix the catalogue")
    t = dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t.tzinfo else t


def _check_scale(item: dict[str, Any], key: str) -> None:
    scale, _ = asset_scale_offset(item.get("assets", {}).get(key, {}))
    if scale is not None and abs(float(scale) - S2_SCALE) > 1e-12:
        raise SourceError(
            f"STAC item {item.get('id')}: asset {key!r} has raster scale {scale}, not "
            f"{S2_SCALE}: this provider's reflectance encoding is not supported"
        )


def s2_scenes_from_items(
    l2a: Iterable[dict[str, Any]], l1c: Iterable[dict[str, Any]], profile: StacProfile,
    sign: Callable[[str], str], skipped: list[dict[str, str]],
) -> list[S2Scene]:
    """S2 scenes from item dicts (pure): L2A items with the assets of their L1C item, plus
    L1C items without an L2A one. Items missing a band asset are appended to ``skipped``
    (``{"item", "why"}``) instead; of several processings of one acquisition (Earth Search's
    ``_0_L2A`` at baseline 02.14 and ESA's reprocessed ``_1_L2A`` at 05.00) only the newest is
    used, the others are appended to ``skipped`` with ``why`` = ``superseded by <id>`` (one
    observation per acquisition: both would be counted and averaged otherwise)."""
    l2a = newest_processing(list(l2a), skipped)
    l1c = newest_processing(list(l1c), skipped)
    l1c_by_id = {str(it["id"]): it for it in l1c}
    l1c_by_key = {str(it["id"]).removesuffix(profile.l1c_suffix): it for it in l1c}
    # items without a tile are never paired by acquisition (their key is not in this map)
    l1c_by_acq = {k: it for it in l1c if (k := acquisition_key(it))[1]}
    out: list[S2Scene] = []
    used_l1c: set[str] = set()
    for it in l2a:
        key = str(it["id"]).removesuffix(profile.l2a_suffix)
        assets = _band_assets(it, "L2A", L2A_FILE_BANDS, profile, sign, skipped)
        if assets is None:
            continue
        products = ["L2A"]
        offsets = {"L2A": item_offset_dn(it, _keys(profile, L2A_FILE_BANDS, "L2A"), profile)}
        source = derived_from_id(it)
        pair = l1c_by_id.get(source) if source else None
        if pair is None:
            pair = l1c_by_key.get(key)
        if pair is None:
            # CDSE: L1C and L2A product ids differ in their last field (processing time)
            pair = l1c_by_acq.get(acquisition_key(it))
        if pair is not None:
            l1c_assets = _band_assets(pair, "L1C", L1C_FILE_BANDS, profile, sign, skipped)
            if l1c_assets is not None:
                assets.update(l1c_assets)
                products.append("L1C")
                offsets["L1C"] = item_offset_dn(
                    pair, _keys(profile, L1C_FILE_BANDS, "L1C"), profile,
                    {profile.offset_applied_property: False})
                used_l1c.add(str(pair["id"]))
        out.append(_s2_scene(it, tuple(products), assets, offsets, profile))
    for it in l1c:
        if str(it["id"]) in used_l1c:
            continue
        assets = _band_assets(it, "L1C", L1C_FILE_BANDS, profile, sign, skipped)
        if assets is None:
            continue
        off = item_offset_dn(it, _keys(profile, L1C_FILE_BANDS, "L1C"), profile,
                             {profile.offset_applied_property: False})
        out.append(_s2_scene(it, ("L1C",), assets, {"L1C": off}, profile))
    return sorted(out, key=lambda s: (s.time, s.id))


def _keys(profile: StacProfile, bands: Iterable[str], level: str) -> list[str]:
    keys = profile.keys(level)
    return [keys[b] for b in bands if b in keys]


def _baseline(item: dict[str, Any]) -> float:
    return processing_baseline(item.get("properties", {}))


def _generation_time(item: dict[str, Any]) -> str:
    """When the item's product was processed (``s2:generation_time``, CDSE's
    ``processing:datetime``), as the item states it ("" when it does not)."""
    props = item.get("properties", {})
    return str(props.get("s2:generation_time") or props.get("processing:datetime") or "")


def acquisition_key(item: dict[str, Any]) -> tuple[str, str, str]:
    """What one acquisition of one tile shares across its processings: the platform, the MGRS
    tile and the sensing time (to the second)."""
    props = item.get("properties", {})
    tile = str(props.get("s2:mgrs_tile") or props.get("grid:code", "") or "").removeprefix("MGRS-")
    platform = str(props.get("platform", "")).lower()
    return platform, tile, item_time(item).strftime("%Y%m%dT%H%M%S")


def newest_processing(items: list[dict[str, Any]],
                      skipped: list[dict[str, str]]) -> list[dict[str, Any]]:
    """One item per acquisition (:func:`acquisition_key`): the highest processing baseline
    (then the latest processing time, :func:`_generation_time`, then the id); the others are
    appended to ``skipped`` as ``superseded by <id>`` (with ``superseded_by``: a choice, not a
    fault, so never retried). Items without a tile are kept as they are."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    keep: list[dict[str, Any]] = []
    for it in items:
        key = acquisition_key(it)
        if not key[1]:
            keep.append(it)
        else:
            groups.setdefault(key, []).append(it)
    for members in groups.values():
        members.sort(key=lambda it: (_baseline(it), _generation_time(it), str(it.get("id"))))
        best = members[-1]
        keep.append(best)
        for it in members[:-1]:
            skipped.append({"item": str(it.get("id")), "sensor": "s2", "cause": "superseded",
                            "superseded_by": str(best.get("id")),
                            "why": f"superseded by {best.get('id')} (baseline "
                                   f"{_baseline(it):05.2f} -> {_baseline(best):05.2f})"})
            log.info("STAC item %s: another processing of the acquisition of %s; using it",
                     it.get("id"), best.get("id"))
    order = {id(it): i for i, it in enumerate(items)}
    return sorted(keep, key=lambda it: order[id(it)])


def derived_from_id(item: dict[str, Any]) -> str:
    """Id of the item this one was made from (its ``derived_from`` link: Earth Search's L2A
    items name their L1C item), or ""."""
    for link in item.get("links", []) or []:
        if link.get("rel") == "derived_from" and "/items/" in str(link.get("href", "")):
            return str(link["href"]).rstrip("/").rsplit("/items/", 1)[1].split("?")[0]
    return ""


def _band_assets(
    item: dict[str, Any], level: str, bands: tuple[str, ...], profile: StacProfile,
    sign: Callable[[str], str], skipped: list[dict[str, str]],
) -> dict[str, str] | None:
    assets = item.get("assets", {})
    keys = profile.keys(level)
    unknown = [b for b in bands if b not in keys]
    if unknown:
        skipped.append({"item": str(item.get("id")), "sensor": "s2", "cause": "no_asset_key",
                        "why": f"profile {profile.name!r} has no {level} asset key for "
                               f"{', '.join(unknown)}"})
        log.warning("STAC item %s: profile %r reads no %s band %s: skipped", item.get("id"),
                    profile.name, level, unknown)
        return None
    missing = [keys[b] for b in bands if keys[b] not in assets]
    if missing:
        skipped.append({"item": str(item.get("id")), "sensor": "s2", "cause": "missing_asset",
                        "why": f"no asset {', '.join(missing)}"})
        log.warning("STAC item %s lacks band assets %s: skipped", item.get("id"), missing)
        return None
    out = {}
    for b in bands:
        _check_scale(item, keys[b])
        out[f"{level}/{b}"] = _href(item, assets[keys[b]], sign)
    scl = assets.get(keys.get(SCL_FILE, ""))
    if level == "L2A" and scl is not None:
        out[f"L2A/{SCL_FILE}"] = _href(item, scl, sign)
    return out


def _href(item: dict[str, Any], asset: dict[str, Any], sign: Callable[[str], str]) -> str:
    """``sign(href)`` of an asset; a refused href is an error naming the item."""
    try:
        return sign(str(asset["href"]))
    except HrefRefusedError as exc:
        raise HrefRefusedError(f"STAC item {item.get('id')}: {exc}") from None


def _s2_scene(item: dict[str, Any], products: tuple[str, ...], assets: dict[str, str],
              offsets: dict[str, float], profile: StacProfile) -> S2Scene:
    props = item.get("properties", {})
    tile = str(props.get("s2:mgrs_tile") or props.get("grid:code", "") or "").removeprefix("MGRS-")
    azimuth, zenith = sun_angles(props)
    return S2Scene(
        path=Path(str(item["id"])), name=str(item["id"]), time=item_time(item), tile=tile,
        products=products, sun_azimuth_deg=azimuth, sun_zenith_deg=zenith,
        offsets=offsets, scl=f"L2A/{SCL_FILE}" in assets, assets=assets,
        datatake=datatake_key(str(props.get("s2:datatake_id")
                                  or props.get("eopf:datatake_id") or "")),
    )


#: Sun angles when an item states none (degrees; the shadow mask's projection direction).
DEFAULT_SUN_AZIMUTH_DEG, DEFAULT_SUN_ZENITH_DEG = 150.0, 30.0


def sun_angles(props: dict[str, Any]) -> tuple[float, float]:
    """(azimuth, zenith) in degrees: ``view:sun_azimuth`` / ``view:sun_elevation`` (Earth
    Search), else ``s2:mean_solar_azimuth`` / ``s2:mean_solar_zenith`` (Planetary Computer),
    else :data:`DEFAULT_SUN_AZIMUTH_DEG` / :data:`DEFAULT_SUN_ZENITH_DEG`."""
    az = props.get("view:sun_azimuth")
    if az is None:
        az = props.get("s2:mean_solar_azimuth")
    el = props.get("view:sun_elevation")
    zen = (90.0 - float(el)) if el is not None else props.get("s2:mean_solar_zenith")
    return (float(az) if az is not None else DEFAULT_SUN_AZIMUTH_DEG,
            float(zen) if zen is not None else DEFAULT_SUN_ZENITH_DEG)


def datatake_key(datatake_id: str) -> str:
    """A datatake id without its processing baseline (``GS2A_20230628T070631_041859_N05.09``
    -> ``GS2A_20230628T070631_041859``): granules of one datatake processed at two baselines
    are still one observation."""
    return re.sub(r"_N\d{2}\.\d{2}$", "", datatake_id)


def s1_scenes_from_items(
    items: Iterable[dict[str, Any]], profile: StacProfile, sign: Callable[[str], str],
    skipped: list[dict[str, str]],
) -> list[S1Scene]:
    """S1 scenes from item dicts (pure); an item with neither polarisation is skipped."""
    out = []
    for it in items:
        assets = it.get("assets", {})
        why = uncalibrated_s1(it, profile)
        if why:
            skipped.append({"item": str(it.get("id")), "sensor": "s1", "cause": "uncalibrated",
                            "why": why})
            log.warning("STAC item %s: %s: skipped", it.get("id"), why)
            continue
        have = {b: _href(it, assets[k], sign) for b, k in profile.s1_keys.items() if k in assets}
        if not have:
            skipped.append({"item": str(it.get("id")), "sensor": "s1", "cause": "missing_asset",
                            "why": "no vv / vh asset"})
            continue
        props = it.get("properties", {})
        state = props.get("sat:orbit_state")
        orbit = props.get("sat:relative_orbit")
        out.append(S1Scene(
            path=Path(str(it["id"])), name=str(it["id"]), time=item_time(it),
            orbit_pass=str(state).upper() if state else None, units=profile.s1_units,
            bands=tuple(b for b in ("VV", "VH") if b in have), assets=have,
            relative_orbit=int(orbit) if orbit is not None else None,
        ))
    return sorted(out, key=lambda s: (s.time, s.id))


def uncalibrated_s1(item: dict[str, Any], profile: StacProfile) -> str:
    """Why an S1 item cannot be read as backscatter, or "": a GRD item (collection
    ``sentinel-1-grd`` of Planetary Computer or Earth Search, or integer ``raster:bands`` on
    its VV / VH assets) holds uncalibrated amplitude DNs, not gamma0 / sigma0."""
    coll = str(item.get("collection", ""))
    if coll.endswith("-grd") or coll == "sentinel-1-grd":
        return (f"collection {coll} holds uncalibrated GRD amplitude (not gamma0): use a "
                "calibrated collection (Planetary Computer sentinel-1-rtc)")
    for key in profile.s1_keys.values():
        rb = (item.get("assets", {}).get(key, {}).get("raster:bands") or [{}])[0]
        if str(rb.get("data_type", "")).startswith(("uint", "int")):
            return (f"asset {key!r} is {rb['data_type']} (uncalibrated GRD DNs, not gamma0 / "
                    "sigma0): use a calibrated collection (Planetary Computer sentinel-1-rtc)")
    return ""


QUERY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda x, y: bool(x == y), "neq": lambda x, y: bool(x != y),
    "lt": lambda x, y: bool(x < y), "lte": lambda x, y: bool(x <= y),
    "gt": lambda x, y: bool(x > y), "gte": lambda x, y: bool(x >= y),
    "in": lambda x, y: x in y,
}


def matches_query(value: Any, cond: Any) -> bool:
    """STAC API ``query`` semantics for one property (a bare value means ``eq``)."""
    if not isinstance(cond, dict):
        return bool(value == cond)
    return value is not None and all(QUERY_OPS[op](value, v) for op, v in cond.items())


def bbox_overlaps(a: Any, b: tuple[float, float, float, float]) -> bool:
    if not a or len(a) < 4:
        return True
    return not (a[2] < b[0] or a[0] > b[2] or a[3] < b[1] or a[1] > b[3])
