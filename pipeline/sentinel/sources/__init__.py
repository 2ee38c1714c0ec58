"""Sentinel-1/2 monthly composite sources behind one protocol
(:class:`pipeline.sentinel.sources.base.SentinelSource`) and the one factory that builds them.

===========  ================================================================================
source       where composites come from
===========  ================================================================================
``local``    a scene archive on disk (:mod:`pipeline.sentinel.sources.local`), e.g. the demo's
``gee``      Google Earth Engine computePixels (:mod:`pipeline.sentinel.sources.gee`)
===========  ================================================================================
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import ConfigError
from pipeline.sentinel.sources.base import SentinelSource


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
    return {"source": str(cfg.source)}


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
        from pipeline.sentinel.sources.local import LocalSource

        return LocalSource(archive)
    if cfg.source == "gee":
        from pipeline.sentinel.sources.gee import GeeSource

        return GeeSource.from_config(cfg)
    raise ConfigError(
        f"{where}: sentinel.source {cfg.source!r} is not available yet: use 'local' or 'gee'"
    )
