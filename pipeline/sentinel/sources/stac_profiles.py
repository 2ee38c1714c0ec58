"""Provider profiles of the STAC source: collection ids, asset keys and conventions (pure data).

* ``earth-search``: Element 84 Earth Search v1 (https://earth-search.aws.element84.com/v1):
  ``sentinel-2-l2a`` COGs (asset keys ``coastal`` ... ``swir22``, ``scl``;
  ``earthsearch:boa_offset_applied`` says whether the baseline >= 04.00 offset was already
  removed from the DNs), ``sentinel-2-l1c`` (same keys plus ``cirrus``; JPEG2000 in the
  requester-pays bucket ``s3://sentinel-s2-l1c``: reading it needs AWS credentials and
  ``AWS_REQUEST_PAYER=requester``). No calibrated Sentinel-1 (its ``sentinel-1-grd`` is
  uncalibrated and requester-pays): S1 stays empty unless ``sentinel.stac.s1_collection``
  names one.
* ``planetary-computer``: Microsoft Planetary Computer
  (https://planetarycomputer.microsoft.com/api/stac/v1): ``sentinel-2-l2a`` COGs (asset keys
  ``B01`` ... ``B12``, ``B8A``, ``SCL``; DNs not harmonised: baseline >= 04.00 carries the -1000
  offset), no L1C (so no s2cloudless: clouds come from SCL), ``sentinel-1-rtc``
  (radiometrically terrain-corrected gamma0, linear power, assets ``vv`` / ``vh``). Asset URLs
  must be signed (``planetary-computer`` package, or a SAS token).

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


@dataclass(frozen=True)
class StacProfile:
    """How one provider lays out Sentinel items.

    Attributes:
        name: profile name (config ``sentinel.stac.profile``).
        s2_l2a, s2_l1c, s1: collection ids ("" = the provider has none).
        s2_keys: file band (``B01`` ... ``B12``, ``B8A``, ``SCL``) -> asset key.
        s1_keys: polarisation (``VV``, ``VH``) -> asset key.
        s1_units: ``linear`` (power, e.g. RTC gamma0) or ``db``.
        offset_applied_property: item property that is True when the provider already removed
            the baseline >= 04.00 offset from the DNs ("" = never removed).
        l2a_suffix, l1c_suffix: item-id suffixes that pair an L2A item with its L1C item.
        sign: asset URLs need Planetary Computer signing.
        lacks: what the provider does not offer (for the docs and warnings).
    """

    name: str
    s2_l2a: str
    s2_l1c: str
    s1: str
    s2_keys: dict[str, str] = field(default_factory=dict)
    s1_keys: dict[str, str] = field(default_factory=dict)
    s1_units: str = "linear"
    offset_applied_property: str = ""
    l2a_suffix: str = "_L2A"
    l1c_suffix: str = "_L1C"
    sign: bool = False
    lacks: str = ""


PROFILES: dict[str, StacProfile] = {
    "earth-search": StacProfile(
        name="earth-search", s2_l2a="sentinel-2-l2a", s2_l1c="sentinel-2-l1c", s1="",
        s2_keys=_ES_KEYS, s1_keys={"VV": "vv", "VH": "vh"}, s1_units="linear",
        offset_applied_property="earthsearch:boa_offset_applied",
        lacks="calibrated Sentinel-1 (no S1 unless sentinel.stac.s1_collection is set); its L1C "
              "is JPEG2000 in a requester-pays bucket",
    ),
    "planetary-computer": StacProfile(
        name="planetary-computer", s2_l2a="sentinel-2-l2a", s2_l1c="", s1="sentinel-1-rtc",
        s2_keys=_PC_KEYS, s1_keys={"VV": "vv", "VH": "vh"}, s1_units="linear", sign=True,
        lacks="Sentinel-2 L1C (no s2cloudless: clouds come from SCL, and no L1C fallback)",
    ),
}

#: Earth Search's default API root and Planetary Computer's.
DEFAULT_URLS: dict[str, str] = {
    "earth-search": "https://earth-search.aws.element84.com/v1",
    "planetary-computer": "https://planetarycomputer.microsoft.com/api/stac/v1",
}
