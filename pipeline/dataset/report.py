"""QA report of a built dataset: figure builders and HTML rendering (no file I/O).

Every ``fig_*`` function takes arrays / DataFrames and returns a matplotlib ``Figure`` (Agg
backend, never shown); :mod:`pipeline.dataset.qa` gathers the inputs, saves the PNGs and
writes ``report/index.html`` built by :func:`render_html`.

Figures:
    * one sample sheet per selected patch: T1, T2, label T1/T2 in the class colours, binary
      change, a monthly Sentinel-2 true-colour strip (B4, B3, B2, robust 2-98 % stretch shared by
      all months) and a Sentinel-1 VV strip, the HR patch outlined inside each footprint;
    * class pixel fractions per split and per city;
    * a map of change fraction per patch (patch polygons coloured), one panel per AOI;
    * a heatmap of the mean clear-observation count per month per AOI (S2 and S1);
Tables: the Sentinel fetch summary (requests, pixels, retries, bytes, seconds per AOI), the
split leakage report and where the build's time went (per rule, from Snakemake's benchmark
files).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from pipeline.sentinel.model import is_superseded

if TYPE_CHECKING:
    from pipeline.io.job_benchmarks import JobBenchmark

LABEL_NODATA = 255

#: What the leakage table says and what is allowed (docs/splits.md).
LEAKAGE_NOTE = (
    "Leakage is train ground seen by a held-out patch: a val or test patch whose Sentinel "
    "footprint covers train HR patches, or whose HR patch lies inside a train footprint. "
    "With splits.mode 'block' the train-val and train-test rows must read 0. The val-test "
    "row may be non-zero: both splits are held out and neither trains the model, so their "
    "overlap leaks nothing (the guard band separates train from the held-out splits only). "
    "With 'random' the table measures how much a random split leaks."
)

#: binary change colours: unchanged dark grey, changed red, ignored light blue-grey (visible on
#: the white page and distinct from every class colour's role in the label panels)
CHANGE_COLORS = {0: (60, 60, 60), 1: (230, 25, 45), 255: (170, 190, 215)}


# --------------------------------------------------------------------------- colours


def class_palette(schema_id: str = "fusu17") -> tuple[np.ndarray, list[str]]:
    """Colour look-up table and class names of a class schema.

    Returns:
        (lut uint8 (256, 3): label value -> RGB, nodata 255 -> schema nodata colour;
        names list indexed by value). Falls back to the tab20 palette and ``class <v>`` names
        if the schema cannot be loaded.
    """
    lut = np.zeros((256, 3), np.uint8)
    try:
        from pipeline.classes import load_schema

        schema = load_schema(schema_id)
        for c in schema.classes:
            lut[c.value] = c.color
        lut[schema.nodata] = schema.nodata_color
        return lut, list(schema.names)
    except Exception:  # schema absent: still render with a generic palette
        cmap = plt.get_cmap("tab20")
        for v in range(18):
            lut[v] = (np.asarray(cmap(v % 20)[:3]) * 255).astype(np.uint8)
        return lut, [f"class {v}" for v in range(18)]


def colorize(labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """(H, W) uint8 labels -> (H, W, 3) uint8 RGB via ``lut`` (256, 3)."""
    return lut[np.asarray(labels, dtype=np.uint8)]


def colorize_change(change: np.ndarray) -> np.ndarray:
    """(H, W) uint8 change (0/1, 255 ignored) -> RGB (:data:`CHANGE_COLORS`: dark grey /
    red / light blue-grey)."""
    lut = np.zeros((256, 3), np.uint8)
    for k, v in CHANGE_COLORS.items():
        lut[k] = v
    return lut[np.asarray(change, dtype=np.uint8)]


def robust_stretch(x: np.ndarray, lo: float = 2.0, hi: float = 98.0, axis: int = -3) -> np.ndarray:
    """Percentile stretch to [0, 1] per channel (channels on ``axis``), NaN -> 0.

    Percentiles are taken over every finite value of a channel (all months of a strip
    together), so months stay comparable. Constant channels map to 0.5.
    """
    a = np.asarray(x, dtype=np.float32)
    a = np.moveaxis(a, axis, 0)
    out = np.zeros_like(a)
    for c in range(a.shape[0]):
        v = a[c]
        fin = np.isfinite(v)
        if not fin.any():
            continue
        p0, p1 = np.percentile(v[fin], [lo, hi])
        if p1 <= p0:
            out[c] = np.where(fin, 0.5, 0.0)
            continue
        out[c] = np.where(fin, np.clip((v - p0) / (p1 - p0), 0.0, 1.0), 0.0)
    return np.moveaxis(out, 0, axis)


# --------------------------------------------------------------------------- samples


@dataclass
class SampleView:
    """Everything one sample sheet shows.

    Attributes:
        t1, t2: uint8 (H, W, 3) HR RGB.
        label1, label2: uint8 (H, W) class values, 255 = no data.
        change: uint8 (H, W) 0/1, 255 = ignored.
        s2_rgb: float32 (T, 3, h, w) reflectance of B4, B3, B2; NaN = no data.
        s1_vv: float32 (T, h, w) VV backscatter (dB); NaN = no data.
        months: T strings ``YYYY-MM``.
        patch_box: (off_x, off_y, w, h) of the HR patch in footprint pixels, or None.
        month_marks: ``{YYYY-MM: mark}`` of months that are not plain L2A months with data
            (:func:`month_mark`), shown under the month in red.
    """

    patch_id: str
    aoi: str
    split: str
    change_fraction: float
    t1: np.ndarray
    t2: np.ndarray
    label1: np.ndarray
    label2: np.ndarray
    change: np.ndarray
    s2_rgb: np.ndarray
    s1_vv: np.ndarray
    months: Sequence[str]
    patch_box: Sequence[float] | None = None
    month_marks: Mapping[str, str] | None = None


def choose_samples(change_fraction: np.ndarray, n: int) -> list[int]:
    """Deterministic indices of ``n`` patches spread over the change-fraction range
    (evenly spaced ranks, always including the most changed patch)."""
    cf = np.nan_to_num(np.asarray(change_fraction, dtype=np.float64), nan=-1.0)
    order = np.argsort(cf, kind="stable")
    n = min(n, len(order))
    if n <= 0:
        return []
    ranks = np.unique(np.round(np.linspace(len(order) - 1, 0, n)).astype(int))
    return [int(order[r]) for r in ranks[::-1]]


def fig_sample(view: SampleView, lut: np.ndarray) -> Figure:
    """Sample sheet: HR row (T1, T2, labels, change) + S2 true-colour and S1 VV monthly strips."""
    from matplotlib.patches import Rectangle

    T = len(view.months)
    ncols = max(5, T)
    fig = plt.figure(figsize=(max(10.0, 1.15 * ncols), 2.4 + 2 * 1.35 + 0.4), dpi=80)
    gs = fig.add_gridspec(3, ncols, height_ratios=[2.2, 1.0, 1.0], hspace=0.35, wspace=0.08)
    fig.suptitle(
        f"{view.patch_id}  ({view.aoi}, {view.split}, change {view.change_fraction:.1%})",
        fontsize=11,
    )
    hr = [
        ("T1", view.t1),
        ("T2", view.t2),
        ("label T1", colorize(view.label1, lut)),
        ("label T2", colorize(view.label2, lut)),
        ("change", colorize_change(view.change)),
    ]
    span = ncols // 5
    for k, (title, img) in enumerate(hr):
        ax = fig.add_subplot(gs[0, k * span : (k + 1) * span])
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])  # a frame, not axes: a panel is visible whatever its colours
        ax.set_yticks([])
    s2 = robust_stretch(view.s2_rgb) if T else np.zeros((0, 3, 1, 1))
    vv = robust_stretch(view.s1_vv[:, None])[:, 0] if T else np.zeros((0, 1, 1))
    for t in range(T):
        for row, img, cmap in ((1, np.moveaxis(s2[t], 0, -1), None), (2, vv[t], "gray")):
            ax = fig.add_subplot(gs[row, t])
            ax.imshow(img, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            if view.patch_box is not None:
                x, y, w, h = (float(v) for v in view.patch_box)
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, ec="yellow", lw=0.8))
            ax.set_axis_off()
            if row == 1:
                mark = view.month_marks.get(view.months[t], "") if view.month_marks else ""
                ax.set_title(f"{view.months[t]}\n{mark}" if mark else view.months[t],
                             fontsize=7, color="#b00" if mark else "black")
        if t == 0:
            for ax, text in ((fig.axes[-2], "S2 RGB"), (fig.axes[-1], "S1 VV")):
                ax.text(
                    -0.1,
                    0.5,
                    text,
                    transform=ax.transAxes,
                    rotation=90,
                    va="center",
                    ha="right",
                    fontsize=8,
                )
    return fig


def fig_legend(lut: np.ndarray, names: Sequence[str]) -> Figure:
    """Class colour legend (value, name, colour swatch) incl. no data and change colours."""
    from matplotlib.patches import Patch

    handles = [
        Patch(fc=lut[v] / 255.0, ec="k", lw=0.4, label=f"{v} {n}") for v, n in enumerate(names)
    ]
    handles.append(Patch(fc=lut[LABEL_NODATA] / 255.0, ec="k", lw=0.4, label="255 no data"))
    handles += [
        Patch(fc=np.asarray(CHANGE_COLORS[k]) / 255.0, ec="k", lw=0.4, label=f"change: {lab}")
        for k, lab in ((0, "unchanged"), (1, "changed"), (255, "ignored"))
    ]
    fig = plt.figure(figsize=(12, 1.9), dpi=80)  # 6 columns of up to 24 characters
    fig.legend(handles=handles, loc="center", ncol=6, fontsize=8, frameon=False)
    return fig


# --------------------------------------------------------------------------- class histograms


def class_fractions(index: Any, by: str, n_classes: int = 18) -> Any:
    """Class pixel fractions (T1 + T2 histograms) per value of column ``by``.

    Args:
        index: DataFrame with ``hist_t1_<v>`` / ``hist_t2_<v>`` columns (pixel counts).
    Returns:
        DataFrame (groups x classes 0..n-1) of fractions summing to 1 per row (0 if empty).
    """
    import pandas as pd

    cols1 = [f"hist_t1_{v}" for v in range(n_classes)]
    cols2 = [f"hist_t2_{v}" for v in range(n_classes)]
    have = [c for c in cols1 + cols2 if c in index.columns]
    if not have or by not in index.columns:
        return pd.DataFrame(columns=list(range(n_classes)), dtype=float)
    h = np.zeros((len(index), n_classes))
    for cols in (cols1, cols2):
        if all(c in index.columns for c in cols):
            h += index[cols].to_numpy(np.float64)
    df = pd.DataFrame(h, columns=list(range(n_classes)))
    df[by] = index[by].astype(str).to_numpy()
    g = df.groupby(by, sort=True).sum()
    tot = g.sum(axis=1).replace(0, 1.0)
    return g.div(tot, axis=0)


def fig_class_histograms(
    tables: Mapping[str, Any], lut: np.ndarray, names: Sequence[str]
) -> Figure:
    """Grouped bars of class fractions, one panel per table (e.g. ``{"split": .., "city": ..}``)."""
    fig, axes = plt.subplots(len(tables), 1, figsize=(12, 3.2 * len(tables)), dpi=80, squeeze=False)
    x = np.arange(len(names))
    for ax, (title, tab) in zip(axes[:, 0], tables.items(), strict=True):
        groups = list(tab.index)
        width = 0.8 / max(1, len(groups))
        cmap = plt.get_cmap("tab10")
        for k, g in enumerate(groups):
            vals = tab.loc[g].reindex(range(len(names)), fill_value=0.0).to_numpy(float)
            ax.bar(x - 0.4 + (k + 0.5) * width, vals, width, label=str(g), color=cmap(k % 10))
        ax.set_xticks(x)
        ax.set_xticklabels(
            [f"{v} {n}" for v, n in enumerate(names)], rotation=35, ha="right", fontsize=7
        )
        for t, v in zip(ax.get_xticklabels(), range(len(names)), strict=True):
            t.set_color(np.clip(lut[v] / 255.0 * 0.8, 0, 1))
        ax.set_ylabel("pixel fraction")
        ax.set_title(f"class distribution per {title} (T1 + T2)", fontsize=10)
        if groups:
            ax.legend(fontsize=8, ncol=min(6, len(groups)))
        else:
            ax.text(
                0.5, 0.5, "no class histograms in the index", ha="center", transform=ax.transAxes
            )
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- change map


def fig_change_map(index: Any) -> Figure:
    """Patch polygons coloured by change fraction, one panel per AOI (coordinates as stored:
    EPSG:4326 lon/lat for the merged index; aspect corrected for latitude)."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Polygon as MplPolygon

    aois = sorted(index["aoi"].astype(str).unique()) if len(index) else []
    n = max(1, len(aois))
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 4.6), dpi=80, squeeze=False)
    norm = matplotlib.colors.Normalize(
        vmin=0.0,
        vmax=max(
            1e-6, float(np.nanmax(index["change_fraction"].to_numpy(float))) if len(index) else 1.0
        ),
    )
    geo = "geometry" in getattr(index, "columns", [])
    for ax, aoi in zip(axes[0], aois, strict=False):
        sub = index[index["aoi"].astype(str) == aoi]
        polys = []
        for geom in sub.geometry if geo else []:
            g = geom.geoms[0] if hasattr(geom, "geoms") else geom
            polys.append(MplPolygon(np.asarray(g.exterior.coords)[:, :2], closed=True))
        pc = PatchCollection(polys, cmap="magma", norm=norm, edgecolor="0.4", linewidth=0.2)
        pc.set_array(np.nan_to_num(sub["change_fraction"].to_numpy(float), nan=0.0))
        ax.add_collection(pc)
        if polys:
            b = np.asarray([p.get_xy() for p in polys]).reshape(-1, 2)
            ax.set_xlim(b[:, 0].min(), b[:, 0].max())
            ax.set_ylim(b[:, 1].min(), b[:, 1].max())
            lat = float(np.mean(b[:, 1]))
            if abs(lat) <= 90 and abs(b[:, 0]).max() <= 360:
                ax.set_aspect(1.0 / max(0.1, np.cos(np.radians(lat))))
            else:
                ax.set_aspect("equal")
        ax.set_title(f"{aoi}: change fraction per patch ({len(sub)} patches)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(useOffset=False, style="plain")
        fig.colorbar(pc, ax=ax, fraction=0.046, pad=0.04)
    if not aois:
        axes[0, 0].text(0.5, 0.5, "empty index", ha="center", transform=axes[0, 0].transAxes)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- clear observations


def mean_counts(counts: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Mean observation count per month over ``mask`` pixels: (T, H, W) -> (T,) float."""
    c = np.asarray(counts, dtype=np.float64)
    if mask is None or not mask.any():
        return c.reshape(c.shape[0], -1).mean(axis=1) if c.size else np.zeros(c.shape[0])
    return c[:, mask].mean(axis=1)


def month_mark(summary: Mapping[str, Any], s2_clear_frac: float | None = None) -> str:
    """Short mark of a month that is not a plain L2A month with data: ``"L1C fallback"``,
    ``"no S2"`` (no scene), ``"no clear S2"`` (scenes, but no clear pixel on the footprints),
    ``"no S1"``, ``"<n> items skipped"``, joined by ``"; "``; "" for a plain month.

    Args:
        summary: the month summary (``sentinel/<aoi>/months/<YYYY-MM>.json``).
        s2_clear_frac: share of footprint pixels with at least one clear S2 observation.
    """
    marks = []
    n = summary.get("n_scenes") or {}
    product = summary.get("s2_product")
    if product == "L1C":
        marks.append("L1C fallback")
    if product is None or int(n.get("s2", 1) or 0) == 0:
        marks.append("no S2")
    elif s2_clear_frac is not None and s2_clear_frac == 0.0:
        marks.append("no clear S2")
    if int(n.get("s1", 1) or 0) == 0:
        marks.append("no S1")
    skipped = sum(1 for x in summary.get("skipped_items") or [] if not is_superseded(x))
    if skipped:
        marks.append(f"{skipped} items skipped")
    return "; ".join(marks)


def month_rows(
    summaries: Mapping[str, Mapping[str, Mapping[str, Any]]],
    coverage: Mapping[str, Mapping[str, Mapping[str, float]]],
) -> list[dict[str, Any]]:
    """One row per AOI and month: product, scenes, clear-pixel share and mean observations over
    the footprints, skipped items, empty searches and the month's mark (:func:`month_mark`).

    Args:
        summaries: ``{aoi: {month: month summary}}``.
        coverage: ``{aoi: {month: {"s2_clear_frac", "s2_mean", "s1_mean"}}}``.
    """
    rows = []
    for aoi in sorted(set(summaries) | set(coverage)):
        months = sorted(set(summaries.get(aoi, {})) | set(coverage.get(aoi, {})))
        for m in months:
            sm = summaries.get(aoi, {}).get(m, {})
            cv = coverage.get(aoi, {}).get(m, {})
            n = sm.get("n_scenes") or {}
            rows.append({
                "aoi": aoi, "month": m, "S2 product": sm.get("s2_product") or "none",
                "S2 scenes": n.get("s2"), "S1 scenes": n.get("s1"),
                "S2 clear px share": cv.get("s2_clear_frac"),
                "S2 obs/px": cv.get("s2_mean"), "S1 obs/px": cv.get("s1_mean"),
                "skipped items": sum(1 for x in sm.get("skipped_items") or []
                                     if not is_superseded(x)),
                "superseded": sum(1 for x in sm.get("skipped_items") or []
                                  if is_superseded(x)),
                "empty searches": ", ".join(sm.get("empty_searches") or []),
                "mark": month_mark(sm, cv.get("s2_clear_frac")) if sm else "no summary",
            })
    return rows


def fig_clear_heatmap(
    rows: Mapping[str, Mapping[str, float]],
    marks: Mapping[str, Mapping[str, str]] | None = None,
) -> Figure:
    """Heatmap: rows ``"<aoi> S2"`` / ``"<aoi> S1"``, columns months, values mean count, each
    cell labelled with its value (dark text on light cells, white on dark) and with the month's
    mark (``marks[row][month]``, e.g. ``L1C``) under it. Months absent for a row are blank.
    """
    months = sorted({m for r in rows.values() for m in r})
    labels = list(rows)
    mat = np.full((len(labels), len(months)), np.nan)
    for i, lab in enumerate(labels):
        for j, m in enumerate(months):
            if m in rows[lab]:
                mat[i, j] = rows[lab][m]
    fig, ax = plt.subplots(
        figsize=(max(6.0, 0.75 * len(months) + 3.0), max(2.2, 0.7 * len(labels) + 1.6)), dpi=100
    )
    if mat.size:
        vmax = max(1.0, float(np.nanmax(mat))) if np.isfinite(mat).any() else 1.0
        im = ax.imshow(mat, aspect="auto", cmap="YlGn", vmin=0, vmax=vmax)
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                if np.isfinite(mat[i, j]):
                    mark = ((marks or {}).get(labels[i]) or {}).get(months[j], "")
                    text = f"{mat[i, j]:.1f}" + (f"\n{mark}" if mark else "")
                    dark = mat[i, j] > 0.6 * vmax
                    ax.text(j, i, text, ha="center", va="center", fontsize=8,
                            color="white" if dark else "black",
                            fontweight="bold" if mark else "normal")
        fig.colorbar(im, ax=ax, label="mean observations / pixel")
    ax.set_xticks(range(len(months)))
    ax.set_xticklabels(months, rotation=60, ha="right", fontsize=9)
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_title("clear observations per month (mean over footprint pixels)", fontsize=10)
    fig.tight_layout()
    return fig


def heatmap_rows(
    coverage: dict[str, dict[str, dict[str, float]]],
    summaries: dict[str, dict[str, dict[str, Any]]],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, str]]]:
    """Rows ``"<aoi> S2"`` / ``"<aoi> S1"`` of the clear-observation heat map (mean counts) and
    their cell marks (``L1C``, ``none``: no clear S2 pixel; ``none`` on S1: no scene)."""
    rows: dict[str, dict[str, float]] = {}
    marks: dict[str, dict[str, str]] = {}
    for aoi, months in coverage.items():
        rows[f"{aoi} S2"] = {m: v["s2_mean"] for m, v in months.items()}
        rows[f"{aoi} S1"] = {m: v["s1_mean"] for m, v in months.items()}
        s2m, s1m = marks.setdefault(f"{aoi} S2", {}), marks.setdefault(f"{aoi} S1", {})
        for m, v in months.items():
            sm = summaries.get(aoi, {}).get(m, {})
            if sm.get("s2_product") == "L1C":
                s2m[m] = "L1C"
            if v["s2_clear_frac"] == 0.0:
                s2m[m] = (s2m.get(m, "") + " none").strip()
            if v["s1_mean"] == 0.0:
                s1m[m] = "none"
    return rows, marks


def wavelength_label(nm: float) -> str:
    """A band's wavelength as people read it: ``"665 nm"`` for optical bands, ``"C-band
    (5.55 cm)"`` for Sentinel-1's radar (stored as 55,465,763 nm in the cube's attrs)."""
    if nm >= 1e6:
        band = "C-band " if 3.75e7 <= nm <= 7.5e7 else ""
        return f"{band}({nm / 1e7:.2f} cm)"
    return f"{nm:.0f} nm"


# --------------------------------------------------------------------------- tables


FETCH_FIELDS = ("requests", "pixels", "retries", "bytes", "seconds")


def fetch_summary_rows(summaries: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[dict]:
    """Per-AOI totals (plus an ``all`` row) of the month summaries ``{aoi: {month: json}}``."""
    rows: list[dict[str, Any]] = []
    total = {f: 0.0 for f in FETCH_FIELDS}
    for aoi in sorted(summaries):
        months = summaries[aoi]
        row: dict[str, Any] = {"aoi": aoi, "months": len(months)}
        for f in FETCH_FIELDS:
            row[f] = sum(float(m.get(f, 0) or 0) for m in months.values())
            total[f] += row[f]
        products = sorted({str(m.get("s2_product")) for m in months.values() if "s2_product" in m})
        row["s2_product"] = ", ".join(products)
        rows.append(row)
    if len(rows) > 1:
        rows.append(
            {"aoi": "all", "months": sum(r["months"] for r in rows), **total, "s2_product": ""}
        )
    return rows


def job_time_rows(records: Sequence[JobBenchmark]) -> list[dict[str, Any]]:
    """Where the build's time went, one row per rule (most wall time first) plus an ``all``
    row: jobs, summed wall time (s) and its share of all jobs' wall time (%), the slowest job
    and its wall time (s), the largest peak RSS of a job (MB), summed CPU time (s) and CPU /
    wall (the cores a job kept busy on average). Memory and CPU skip jobs Snakemake could not
    sample (too short); a rule with none shows them empty."""
    by_rule: dict[str, list[JobBenchmark]] = {}
    for r in records:
        by_rule.setdefault(r.rule, []).append(r)
    total = sum(r.seconds for r in records)

    def row(name: str, recs: Sequence[JobBenchmark], slowest: bool) -> dict[str, Any]:
        wall = sum(r.seconds for r in recs)
        rss = [r.max_rss_mb for r in recs if r.max_rss_mb is not None]
        cpu = [r.cpu_s for r in recs if r.cpu_s is not None]
        sampled = sum(r.seconds for r in recs if r.cpu_s is not None)
        top = max(recs, key=lambda r: r.seconds)
        return {
            "rule": name, "jobs": len(recs), "wall s": round(wall, 1),
            "share %": round(100.0 * wall / total, 1) if total > 0 else None,
            "slowest job": top.job if slowest else "", "slowest s": round(top.seconds, 1),
            "peak RSS MB": round(max(rss)) if rss else None,
            "CPU s": round(sum(cpu), 1) if cpu else None,
            "CPU / wall": round(sum(cpu) / sampled, 2) if cpu and sampled > 0 else None,
        }

    wall = {rule: sum(r.seconds for r in recs) for rule, recs in by_rule.items()}
    rows = [row(rule, by_rule[rule], True) for rule in sorted(wall, key=lambda k: (-wall[k], k))]
    if len(rows) > 1:
        rows.append(row("all", list(records), False))
    return rows


def leakage_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Flatten ``splits/leakage.json`` (``overall`` + ``per_city`` blocks of split pairs) into
    rows ``{scope, pair, <metrics>}``; unknown layouts become ``{scope, key, value}`` rows."""
    rows: list[dict[str, Any]] = []
    blocks: list[tuple[str, Any]] = []
    if isinstance(report.get("overall"), Mapping):
        blocks.append(("overall", report["overall"]))
    for city, blk in sorted((report.get("per_city") or {}).items()):
        blocks.append((str(city), blk))
    for scope, blk in blocks:
        for key, val in blk.items():
            if isinstance(val, Mapping):
                rows.append({"scope": scope, "pair": key, **dict(val)})
            else:
                rows.append({"scope": scope, "pair": key, "value": val})
    if not blocks:
        for key, val in _flatten(report):
            rows.append({"scope": "", "pair": key, "value": val})
    return rows


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        out: list[tuple[str, Any]] = []
        for k, v in obj.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, obj)]


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, float | np.floating):
        if float(v).is_integer() and abs(float(v)) < 1e15:
            return f"{int(v):,}"
        return f"{float(v):.4g}"
    if isinstance(v, int | np.integer):
        return f"{int(v):,}"
    if isinstance(v, list | tuple):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An escaped HTML table of ``rows`` (columns: given, else the union in first-seen order)."""
    if not rows:
        return "<p class='empty'>(none)</p>"
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:4px 0}
.note{color:#555;font-size:0.85em}
"""


def render_html(
    title: str,
    summary: Sequence[Mapping[str, Any]],
    sections: Sequence[tuple[str, str, Sequence[str], str]],
) -> str:
    """The report page.

    Args:
        title: page title.
        summary: rows of the summary table at the top.
        sections: ``(heading, note, image file names relative to the page, extra html)``.
    Returns:
        A self-contained HTML document (no scripts, no remote resources).
    """
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        html_table(summary),
    ]
    for heading, note, images, extra in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if note:
            parts.append(f"<p class='note'>{html.escape(note)}</p>")
        for img in images:
            parts.append(f"<img src='{html.escape(img)}' alt='{html.escape(img)}'>")
        if extra:
            parts.append(extra)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
