"""Sentinel-1/2 monthly composite sources behind one protocol
(:class:`pipeline.sentinel.model.SentinelSource`) and the one factory that builds them.

===========  ================================================================================
source       where composites come from
===========  ================================================================================
``local``    a scene archive on disk (:mod:`pipeline.sentinel.sources.local`), e.g. the demo's
``gee``      Google Earth Engine computePixels (:mod:`pipeline.sentinel.sources.gee`)
``stac``     a STAC API or static STAC catalogue of COGs (:mod:`pipeline.sentinel.sources.stac`)
===========  ================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.errors import ConfigError, SourceError
from pipeline.sentinel.model import SentinelSource


def source_identity(cfg: Any, archive: str | None, month: str | None = None) -> dict[str, Any]:
    """What identifies the data a configured source returns (keys the block ledger together
    with the recipe): the source kind and, for ``local``, the scene archive as configured and
    (with ``month``) a fingerprint of that month's scene files."""
    if cfg.source == "local":
        ident: dict[str, Any] = {"source": "local", "archive": str(archive)}
        if month is not None and archive:
            from pipeline.io.scenes import month_fingerprint

            ident["scenes"] = month_fingerprint(archive, month)
        return ident
    if cfg.source == "stac":
        ident = {"source": "stac", "catalog": stac_location(cfg, archive),
                 "profile": cfg.stac.profile, "s2_query": cfg.stac.s2_query,
                 "verify_offsets": cfg.stac.verify_offsets,
                 "collections": [cfg.stac.s2_l2a_collection, cfg.stac.s2_l1c_collection,
                                 cfg.stac.s1_collection], "s1_catalog": cfg.stac.s1_catalog}
        if cfg.stac.s3_endpoint is not None:  # absent = the profile's (older ledgers match)
            ident["s3_endpoint"] = cfg.stac.s3_endpoint
        return ident
    return {"source": str(cfg.source)}


def stac_location(cfg: Any, archive: str | None, where: str = "sentinel") -> str | None:
    """The STAC catalogue a ``stac`` build reads (:func:`pipeline.io.stac_catalog.locate_catalogue`,
    the one rule: ``sentinel.stac.url``, else the archive's catalogue, else None = the
    profile's public API)."""
    from pipeline.io.stac_catalog import locate_catalogue

    return locate_catalogue(cfg.stac.url, archive, where)


def stac_kwargs(cfg: Any, archive: str | None, absolute: bool = False) -> dict[str, Any]:
    """The :class:`~pipeline.sentinel.sources.stac.StacCatalog` arguments of a configured
    ``stac`` build (plain values: they pickle, for dask workers). ``absolute``: a catalogue
    path on disk is made absolute (workers run in another directory or on another node)."""
    from pathlib import Path

    st = cfg.stac
    loc = stac_location(cfg, archive)
    if absolute and loc and "://" not in loc:
        loc = str(Path(loc).resolve())
    return {
        "catalog": loc, "profile": st.profile,
        "collections": {"s2_l2a": st.s2_l2a_collection, "s2_l1c": st.s2_l1c_collection,
                        "s1": st.s1_collection},
        "max_retries": st.max_retries, "backoff_base_s": st.backoff_base_s,
        "timeout_s": st.timeout_s, "max_items": st.max_items, "s2_query": st.s2_query,
        "item_concurrency": st.item_concurrency, "verify_offsets": st.verify_offsets,
        "allow_hosts": tuple(st.allow_hosts), "s1_catalog": st.s1_catalog,
        "s3_endpoint": st.s3_endpoint,
    }


def sensor_sources(cfg: Any, archive: str | None) -> dict[str, str | None]:
    """Where each sensor of a configured build is read from, for the plan and the log:
    ``{"s2": ..., "s1": ... or None}`` (a catalogue and collection, Earth Engine, or a scene
    archive). None: the build has no S1 source (VV / VH stay NaN)."""
    if cfg.source == "gee":
        return {"s2": "Earth Engine (the recipe's S2 collections, docs/earth-engine.md)",
                "s1": "Earth Engine (the recipe's S1 collection, docs/earth-engine.md)"}
    if cfg.source == "local":
        return {"s2": f"scene archive {archive}", "s1": f"scene archive {archive}"}
    from pipeline.sentinel.sources.stac_profiles import DEFAULT_URLS, PROFILES

    st = cfg.stac
    prof = PROFILES[st.profile]
    try:
        loc = stac_location(cfg, archive) or DEFAULT_URLS[st.profile]
    except ConfigError:  # a generated archive whose catalogue a later job writes
        loc = f"{archive}/catalog.json"
    s2 = f"{loc} ({st.s2_l2a_collection or prof.s2_l2a})"
    static = loc.endswith(".json") or "://" not in loc
    s1_coll = st.s1_collection if st.s1_collection is not None else prof.s1
    if static:
        s1: str | None = f"{loc} (its S1 items)"
    elif s1_coll:
        s1 = f"{loc} ({s1_coll})"
    elif st.s1_catalog:
        url = (DEFAULT_URLS["planetary-computer"] if st.s1_catalog == "planetary-computer"
               else st.s1_catalog)
        s1 = f"{url} ({PROFILES['planetary-computer'].s1})"
    else:
        s1 = None
    return {"s2": s2, "s1": s1}


def make_source(cfg: Any, archive: str | None, where: str) -> SentinelSource:
    """The configured source, for the native AOIs and the expansion groups alike.

    Args:
        cfg: the validated ``sentinel`` section (:class:`pipeline.config.SentinelConfig`),
            execution settings included (Earth Engine retries and timeouts).
        archive: the scene archive of the ``local`` source (an AOI's ``sentinel_archive`` or
            ``expand.sentinel_archive``).
        where: what the archive setting belongs to, for messages (``"AOI demo"``,
            ``"expand"``).

    Raises:
        ConfigError: ``local`` without an archive, or a source that is not available.
    """
    if cfg.source == "local":
        if not archive:
            raise ConfigError(
                f"{where}: sentinel.source is 'local' but no scene archive is set: give the "
                "AOI definition a 'sentinel_archive' (or set expand.sentinel_archive for an "
                "expansion; layout in docs/sources.md), or set sentinel.source: gee"
            )
        from pipeline.sentinel.sources.local import local_source

        return local_source(archive)
    if cfg.source == "gee":
        from pipeline.sentinel.sources.gee import GeeSource

        return GeeSource.from_config(cfg)
    if cfg.source == "stac":
        from pipeline.sentinel.sources.stac import stac_source

        return stac_source(**stac_kwargs(cfg, archive))
    raise ConfigError(
        f"{where}: unknown sentinel.source {cfg.source!r}: use 'stac', 'gee' or 'local'"
    )


def preflight(cfg: Any, archives: Sequence[tuple[str, str | None]]) -> None:
    """Check, once per build and before any HR stage runs, that the configured Sentinel source
    can be used: a ``stac`` catalogue answers (one landing page and collections request per
    catalogue, or the static catalogue's items) and the Planetary Computer signer is
    installed; ``gee`` credentials and project are found and Earth Engine initialises;
    ``local`` archives exist (the parse-time config check).

    Args:
        cfg: the validated ``sentinel`` section.
        archives: ``(where, archive)`` of every AOI / expansion that still needs months
            (``where`` names it in messages).

    Raises:
        ConfigError / SourceError / CredentialsError: one message saying what to do.
    """
    if not archives or cfg.source == "local":
        return
    if cfg.source == "gee":
        src = make_source(cfg, None, archives[0][0])
        src.close()
        return
    seen: set[str | None] = set()
    for where, archive in archives:
        loc = stac_location(cfg, archive, where)
        if loc in seen:
            continue
        seen.add(loc)
        from pipeline.sentinel.sources.stac import StacCatalog

        try:
            cat = StacCatalog(**stac_kwargs(cfg, archive))
            try:
                cat.preflight()
            finally:
                cat.close()
        except SourceError as exc:
            raise SourceError(f"{where}: the Sentinel source cannot be used: {exc}") from None

