"""Provider profiles of the STAC source: collection ids, asset keys and conventions (pure data).

* ``earth-search``: Element 84 Earth Search v1 (https://earth-search.aws.element84.com/v1):
  ``sentinel-2-l2a`` COGs (asset keys ``coastal`` ... ``swir22``, ``scl``;
  ``earthsearch:boa_offset_applied`` says whether the baseline >= 04.00 offset was already
  removed from the DNs), ``sentinel-2-l1c`` (same keys plus ``cirrus``; JPEG2000 in the
  requester-pays bucket ``s3://sentinel-s2-l1c``: reading it needs AWS credentials and
  ``AWS_REQUEST_PAYER=requester``). No calibrated Sentinel-1 (its ``sentinel-1-grd`` is
  uncalibrated and requester-pays): S1 stays empty unless ``sentinel.stac.s1_collection``
  names one.
* ``earth-search-c1``: Earth Search's ``sentinel-2-c1-l2a`` (ESA's Collection-1 reprocessing,
  processing baseline >= 05.00; item ids ``S2B_T43QDB_20200110T053549_L2A``; the same asset
  keys as ``sentinel-2-l2a``). Its COGs keep the -1000 DN offset and their ``raster:bands``
  state it truthfully (``offset: -0.1`` at ``scale: 0.0001``), so the offset is read from
  there. No L1C of the same collection (so clouds come from SCL; Earth Search's
  ``sentinel-2-l1c`` has other ids and baselines) and no calibrated Sentinel-1. ESA's
  reprocessing has gaps (Earth Search's README, April 2024: Nov 2016 - Nov 2019 and 2022
  missing) and some items lack band assets (recorded skips).
* ``planetary-computer``: Microsoft Planetary Computer
  (https://planetarycomputer.microsoft.com/api/stac/v1): ``sentinel-2-l2a`` COGs (asset keys
  ``B01`` ... ``B12``, ``B8A``, ``SCL``; DNs not harmonised: baseline >= 04.00 carries the -1000
  offset), no L1C (so no s2cloudless: clouds come from SCL), ``sentinel-1-rtc``
  (radiometrically terrain-corrected gamma0, linear power, assets ``vv`` / ``vh``). Asset URLs
  must be signed (``planetary-computer`` package, or a SAS token).

* ``cdse``: ESA's own archive, the Copernicus Data Space Ecosystem
  (https://stac.dataspace.copernicus.eu/v1): ``sentinel-2-l2a`` and ``sentinel-2-l1c`` items
  whose assets are the JPEG2000 files inside the SAFE products on CDSE's S3 endpoint
  (``s3://eodata/Sentinel-2/MSI/...``; asset keys ``B02_10m`` ... ``SCL_20m`` in L2A, one
  per band and resolution, read at each band's native resolution; ``B01`` ... ``B12`` in L1C).
  The band assets state the -1000 DN offset of baselines >= 04.00 as ``raster:offset: -0.1``
  at ``raster:scale: 0.0001`` (the JP2 DNs keep it). Reading needs the user's CDSE S3 keys
  (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` in the environment, from
  https://eodata-s3keysmanager.dataspace.copernicus.eu). L1C and L2A of one acquisition have
  different product ids (their last field is the processing time), so they are paired by
  acquisition (platform, tile, sensing time). No calibrated Sentinel-1 (its
  ``sentinel-1-grd`` is uncalibrated): S1 comes from ``sentinel.stac.s1_catalog``.

A static catalogue on disk or over HTTP uses one of these layouts (the demo writes Earth
Search's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Earth Search asset key of each file band (``B01`` ... ``B12``, ``B8A``).
_ES_KEYS: dict[str, str] = {
    "B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1",
    "B06": "rededge2", "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09",
    "B10": "cirrus", "B11": "swir16", "B12": "swir22", "SCL": "scl",
}
_PC_KEYS: dict[str, str] = {b: b for b in (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL")}
#: Native resolution (m) of each L2A file band: CDSE's L2A asset keys name it (``B02_10m``).
_NATIVE_M: dict[str, int] = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
    "B8A": 20, "B09": 60, "B11": 20, "B12": 20, "SCL": 20}
_CDSE_L2A_KEYS: dict[str, str] = {b: f"{b}_{m}m" for b, m in _NATIVE_M.items()}
_CDSE_L1C_KEYS: dict[str, str] = {b: b for b in (*_NATIVE_M, "B10") if b != "SCL"}


@dataclass(frozen=True)
class StacProfile:
    """How one provider lays out Sentinel items.

    Attributes:
        name: profile name (config ``sentinel.stac.profile``).
        s2_l2a, s2_l1c, s1: collection ids ("" = the provider has none).
        s2_keys: file band (``B01`` ... ``B12``, ``B8A``, ``SCL``) -> asset key.
        s2_l1c_keys: the same for L1C items where they differ (empty = ``s2_keys``).
        s1_keys: polarisation (``VV``, ``VH``) -> asset key.
        s1_units: ``linear`` (power, e.g. RTC gamma0) or ``db``.
        offset_applied_property: item property that is True when the provider already removed
            the baseline >= 04.00 offset from the DNs ("" = never removed).
        offset_rule: ``baseline`` (processing baseline >= 04.00 means -1000 DN unless
            ``offset_applied_property`` says it was removed) or ``raster_bands`` (the band
            assets' ``raster:bands`` offset / scale, where the provider states it truthfully).
        verify_offset_flag: the provider's ``offset_applied_property`` is known to be wrong on
            some items (Earth Search: ``false`` on COGs whose offset was already removed), so
            the data are checked before the offset is applied
            (:func:`pipeline.sentinel.sources.stac.dn_shows_offset_removed`).
        l2a_suffix, l1c_suffix: item-id suffixes that pair an L2A item with its L1C item.
        sign: asset URLs need Planetary Computer signing.
        cloud_schemes: URL schemes besides http(s) its items may use for assets (Earth
            Search's requester-pays L1C: ``s3``); read with the user's credentials.
        s3_endpoint: the S3 endpoint its ``s3://`` assets live on, when it is not AWS's
            (``https://host``; CDSE's ``eodata``): they are read through GDAL's ``/vsis3/``
            with path-style requests to that endpoint and the user's keys
            (``sentinel.stac.s3_endpoint`` overrides it).
        max_connections: the provider's cap on one account's concurrent connections (0 =
            none stated): a month job reads at most this many scenes at once (CDSE: 4 for
            general users, documentation.dataspace.copernicus.eu/Quotas.html).
        lacks: what the provider does not offer (for the docs and warnings).
    """

    name: str
    s2_l2a: str
    s2_l1c: str
    s1: str
    s2_keys: dict[str, str] = field(default_factory=dict)
    s2_l1c_keys: dict[str, str] = field(default_factory=dict)
    s1_keys: dict[str, str] = field(default_factory=dict)
    s1_units: str = "linear"
    offset_applied_property: str = ""
    offset_rule: str = "baseline"
    verify_offset_flag: bool = False
    l2a_suffix: str = "_L2A"
    l1c_suffix: str = "_L1C"
    sign: bool = False
    cloud_schemes: tuple[str, ...] = ()
    s3_endpoint: str = ""
    max_connections: int = 0
    lacks: str = ""

    def keys(self, level: str) -> dict[str, str]:
        """File band -> asset key of ``level`` (``L2A`` / ``L1C``) items."""
        return self.s2_l1c_keys if level == "L1C" and self.s2_l1c_keys else self.s2_keys


PROFILES: dict[str, StacProfile] = {
    "earth-search": StacProfile(
        name="earth-search", s2_l2a="sentinel-2-l2a", s2_l1c="sentinel-2-l1c", s1="",
        s2_keys=_ES_KEYS, s1_keys={"VV": "vv", "VH": "vh"}, s1_units="linear",
        offset_applied_property="earthsearch:boa_offset_applied", verify_offset_flag=True,
        cloud_schemes=("s3",),
        lacks="calibrated Sentinel-1 (no S1 unless sentinel.stac.s1_collection is set); its L1C "
              "is JPEG2000 in a requester-pays bucket",
    ),
    "earth-search-c1": StacProfile(
        name="earth-search-c1", s2_l2a="sentinel-2-c1-l2a", s2_l1c="", s1="",
        s2_keys=_ES_KEYS, s1_keys={"VV": "vv", "VH": "vh"}, s1_units="linear",
        offset_rule="raster_bands",
        lacks="Sentinel-2 L1C of the same collection (clouds come from SCL, no L1C fallback), "
              "calibrated Sentinel-1, and the months ESA has not reprocessed yet",
    ),
    "planetary-computer": StacProfile(
        name="planetary-computer", s2_l2a="sentinel-2-l2a", s2_l1c="", s1="sentinel-1-rtc",
        s2_keys=_PC_KEYS, s1_keys={"VV": "vv", "VH": "vh"}, s1_units="linear", sign=True,
        lacks="Sentinel-2 L1C (no s2cloudless: clouds come from SCL, and no L1C fallback)",
    ),
    "cdse": StacProfile(
        name="cdse", s2_l2a="sentinel-2-l2a", s2_l1c="sentinel-2-l1c", s1="",
        s2_keys=_CDSE_L2A_KEYS, s2_l1c_keys=_CDSE_L1C_KEYS, s1_keys={"VV": "vv", "VH": "vh"},
        offset_rule="raster_bands",
        cloud_schemes=("s3",), s3_endpoint="https://eodata.dataspace.copernicus.eu",
        max_connections=4,
        lacks="calibrated Sentinel-1 (S1 comes from sentinel.stac.s1_catalog); reading needs "
              "your CDSE S3 keys (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    ),
}

#: Each profile's public STAC API root.
DEFAULT_URLS: dict[str, str] = {
    "earth-search": "https://earth-search.aws.element84.com/v1",
    "earth-search-c1": "https://earth-search.aws.element84.com/v1",
    "planetary-computer": "https://planetarycomputer.microsoft.com/api/stac/v1",
    "cdse": "https://stac.dataspace.copernicus.eu/v1",
}
