"""Earth Engine compute (EECU) estimate of an AOI's fetch plan (pure; no ``ee``).

Earth Engine bills ``computePixels`` in EECU-seconds and publishes no per-pixel price: the cost
of a request depends on the scenes it reads, caching and the server's algorithms
(https://developers.google.com/earth-engine/guides/computation_overview). The estimate is
therefore a linear model over the one quantity the plan knows exactly, the pixels it asks for,
times the observations a month typically holds:

    pixel-observations = block pixels x months x observations per month     (per sensor)
    EECU-s             = pixel-observations / 1e6 x EECU-s per megapixel-observation

* Observations per month: Sentinel-2 revisits every 5 days with two satellites (6 datatakes a
  month at the equator; more where orbits overlap at higher latitudes); Sentinel-1 every 12
  days per satellite and pass, about 5 ascending + descending passes a month.
* EECU-s per megapixel-observation (``sentinel.gee.eecu_s_per_mpx_s2`` / ``..._s1``): an
  order-of-magnitude *prior*, not a measurement (none could be made without a project). Every
  request carries the workload tag ``fusu-<aoi>-<YYYY-MM>``: the metric
  ``earthengine.googleapis.com/project/cpu/usage_time`` grouped by ``workload_tag`` in Cloud
  Monitoring gives the real EECU-s of each AOI-month; divide by that month's pixel-observations
  to calibrate the two rates, then the plan's estimate holds for the rest of the build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Nominal observations per month (see the module docstring).
S2_OBSERVATIONS_PER_MONTH: float = 6.0
S1_OBSERVATIONS_PER_MONTH: float = 5.0


@dataclass(frozen=True)
class EecuRates:
    """EECU-seconds per million pixel-observations, per sensor (S2: 12 bands + cloud layer +
    masks; S1: 2 bands)."""

    s2: float = 1.0
    s1: float = 0.2

    @classmethod
    def from_config(cls, cfg: Any) -> EecuRates:
        """From :class:`pipeline.config.SentinelConfig` (``gee.eecu_s_per_mpx_*``)."""
        g = cfg.gee
        return cls(s2=float(g.eecu_s_per_mpx_s2), s1=float(g.eecu_s_per_mpx_s1))


def eecu_estimate(block_pixels: int, n_months: int, rates: EecuRates) -> dict[str, Any]:
    """The plan's EECU estimate (see the module docstring for the model).

    Args:
        block_pixels: pixels of the AOI's fetch blocks (10 m grid pixels, each fetched once per
            month).
        n_months: months of the AOI.
        rates: EECU-s per megapixel-observation.

    Returns:
        {"pixel_observations": {"s2": n, "s1": n}, "eecu_s": total, "eecu_hours": total / 3600,
        "per_month_eecu_s": total / months, "rates": {...}, "model": "..."}.
    """
    months = max(int(n_months), 0)
    s2 = float(block_pixels) * months * S2_OBSERVATIONS_PER_MONTH
    s1 = float(block_pixels) * months * S1_OBSERVATIONS_PER_MONTH
    eecu = s2 / 1e6 * rates.s2 + s1 / 1e6 * rates.s1
    return {
        "pixel_observations": {"s2": int(s2), "s1": int(s1)},
        "eecu_s": round(eecu, 1),
        "eecu_hours": round(eecu / 3600.0, 3),
        "per_month_eecu_s": round(eecu / months, 1) if months else 0.0,
        "rates": {"s2": rates.s2, "s1": rates.s1},
        "model": (f"block px x months x ({S2_OBSERVATIONS_PER_MONTH:g} S2 / "
                  f"{S1_OBSERVATIONS_PER_MONTH:g} S1 observations a month) x EECU-s per "
                  "megapixel-observation (a prior: calibrate with the workload tags' usage)"),
    }
