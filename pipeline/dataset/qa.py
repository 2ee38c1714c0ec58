"""The QA report (rule ``report``): gather the dataset outputs, draw the figures, write the page.

Output (written atomically as a whole folder): ``<root>/report/index.html`` plus its PNGs
(``sample_<k>.png``, ``legend.png``, ``class_hist.png``, ``change_map.png``,
``clear_obs.png``). Figure building and HTML rendering are the pure functions of
:mod:`pipeline.dataset.report`; reads and writes go through :mod:`pipeline.io`. The driver is
:func:`build_report`.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import ReportConfig
from pipeline.dataset import report as rp
from pipeline.io.atomic import atomic_path, ensure_dir, set_public_modes, write_text_atomic
from pipeline.io.geotiff import read_patch
from pipeline.io.job_benchmarks import read_job_benchmarks
from pipeline.io.jsonfile import read_json_folder, read_json_if_exists
from pipeline.io.mosaic_read import read_cube, read_mosaic_counts
from pipeline.io.parquet import read_index_geo
from pipeline.io.png import save_figure
from pipeline.layout import Layout
from pipeline.sentinel.blocks import footprint_union_mask

log = logging.getLogger(__name__)

#: Indices of B4, B3, B2 in the 14-band stack (:data:`pipeline.bands.ALL_BANDS`) and of VV.
S2_RGB_INDEX = (3, 2, 1)
S1_VV_INDEX = 12


def _pixels(path: Path, what: str) -> np.ndarray:
    data = read_patch(path, what).data
    assert data is not None
    return data


def month_summaries(layout: Layout, aois: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{aoi: {YYYY-MM: summary json}}`` of every ``sentinel/<aoi>/months/*.json`` present."""
    return {aoi: read_json_folder(layout.month_summary(aoi, "0000-00").parent) for aoi in aois}


def month_coverage(layout: Layout, index: Any) -> dict[str, dict[str, dict[str, float]]]:
    """Per AOI and month, over the AOI's footprint pixels: ``s2_mean`` / ``s1_mean`` mean
    clear S2 / valid S1 observation counts, ``s2_clear_frac`` the share of pixels with at least
    one clear S2 observation. ``{aoi: {YYYY-MM: {...}}}``; an AOI without a mosaic is left
    out (logged)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for aoi in sorted(index["aoi"].astype(str).unique()):
        path = layout.mosaic(aoi)
        counts = read_mosaic_counts(path)
        if counts is None:
            log.warning("report: mosaic %s missing, no clear-observation row for %s", path, aoi)
            continue
        sub = index[index["aoi"].astype(str) == aoi]
        shape = counts["s2_count"].shape[1:]
        mask = None
        if {"fp_col0", "fp_row0", "fp_size_px"} <= set(sub.columns):
            mask = footprint_union_mask(
                shape,
                sub["fp_col0"].to_numpy(),
                sub["fp_row0"].to_numpy(),
                sub["fp_size_px"].to_numpy(),
            )
        out[aoi] = {}
        for t, m in enumerate(counts["months"]):
            s2 = counts["s2_count"][t][None]
            out[aoi][str(m)] = {
                "s2_mean": float(rp.mean_counts(s2, mask)[0]),
                "s1_mean": float(rp.mean_counts(counts["s1_count"][t][None], mask)[0]),
                "s2_clear_frac": float(rp.mean_counts((s2 > 0).astype(np.uint8), mask)[0]),
            }
    return out


def sample_view(
    layout: Layout, row: dict[str, Any], month_marks: dict[str, str] | None = None
) -> rp.SampleView:
    """Read one patch's HR rasters and Sentinel footprint cube for the sample sheet
    (``month_marks``: the AOI's ``{YYYY-MM: mark}``)."""
    root = layout.root
    aoi, pid = str(row["aoi"]), str(row["patch_id"])

    def path(col: str, default: Path) -> Path:
        v = row.get(col)
        return root / v if isinstance(v, str) and v else default / f"{pid}.tif"

    t1 = _pixels(root / row["hr_t1"], "HR T1 patch")
    t2 = _pixels(root / row["hr_t2"], "HR T2 patch")
    l1 = _pixels(path("label_t1", layout.labels_dir(aoi, "t1")), "T1 label")[0]
    l2 = _pixels(path("label_t2", layout.labels_dir(aoi, "t2")), "T2 label")[0]
    ch = _pixels(path("change_bin", layout.change_dir(aoi, "bin")), "change mask")[0]
    s2 = np.zeros((0, 3, 1, 1), np.float32)
    vv = np.zeros((0, 1, 1), np.float32)
    months: list[str] = []
    box = None
    if layout.mosaic(aoi).exists() and "fp_col0" in row:
        cube = read_cube(
            layout.mosaic(aoi), int(row["fp_col0"]), int(row["fp_row0"]), int(row["fp_size_px"])
        )
        s2 = cube["x"][:, list(S2_RGB_INDEX)]
        vv = cube["x"][:, S1_VV_INDEX]
        months = [str(m) for m in cube["months"]]
        box = [
            float(row[k]) for k in ("patch_off_x_px", "patch_off_y_px", "patch_w_px", "patch_h_px")
        ]
    cf = row.get("change_fraction")
    return rp.SampleView(
        patch_id=pid,
        aoi=aoi,
        split=str(row.get("split", "")),
        change_fraction=float(cf) if cf is not None and np.isfinite(cf) else 0.0,
        t1=np.moveaxis(t1[:3], 0, -1),
        t2=np.moveaxis(t2[:3], 0, -1),
        label1=l1,
        label2=l2,
        change=ch,
        s2_rgb=s2,
        s1_vv=vv,
        months=months,
        patch_box=box,
        month_marks=month_marks,
    )


def _summary(layout: Layout, index: Any) -> list[dict[str, Any]]:
    row: dict[str, Any] = {"dataset": layout.root.name, "patches": len(index)}
    if "split" in index.columns:
        for s, n in index["split"].astype(str).value_counts().sort_index().items():
            row[s] = int(n)
    row["AOIs"] = index["aoi"].nunique() if "aoi" in index.columns else 0
    row["cities"] = index["city"].nunique() if "city" in index.columns else 0
    if "change_fraction" in index.columns:
        row["mean change fraction"] = float(np.nanmean(index["change_fraction"].to_numpy(float)))
    return [row]


def _stats_html(stats: dict[str, Any] | None) -> str:
    if not stats:
        return "<p class='empty'>(stats.json not found)</p>"
    from pipeline.bands import ALL_BANDS
    from pipeline.dataset.normalize import WAVELENGTHS_NM, parse_stats
    from pipeline.errors import DatasetError

    try:
        st = parse_stats(stats)
    except DatasetError as exc:
        return f"<p class='empty'>stats.json not understood: {exc}</p>"
    rows = [
        {
            "band": b,
            "wavelength": rp.wavelength_label(WAVELENGTHS_NM[i]),
            "mean": float(st["s_mean"][i]),
            "std": float(st["s_std"][i]),
        }
        for i, b in enumerate(ALL_BANDS)
    ]
    rows += [
        {
            "band": f"HR {b}",
            "wavelength": "visible",
            "mean": float(st["hr_mean"][i]),
            "std": float(st["hr_std"][i]),
        }
        for i, b in enumerate("RGB")
    ]
    return rp.html_table(rows)


def _job_times_section(layout: Layout) -> tuple[str, str, list[str], str]:
    """The report's "Where the build's time went" section, from the jobs' benchmark files."""
    records, problems = read_job_benchmarks(layout.job_benchmarks_dir())
    table = rp.html_table(rp.job_time_rows(records))
    if problems:
        table += ("<p class='note'>Not read: "
                  + "; ".join(html.escape(p) for p in problems[:10])
                  + (f" and {len(problems) - 10} more" if len(problems) > 10 else "") + "</p>")
    note = (
        "Wall time, peak memory and CPU time of every job that ran before this report, as "
        "Snakemake measured it (benchmarks/<rule>/<job>.tsv; a job reused from an earlier run "
        "shows that run's figures). CPU / wall is the number of cores a rule's jobs kept busy "
        "on average. Jobs shorter than Snakemake's first sample have no memory or CPU figure. "
        "Snakemake adds up the memory of a job's processes: the forked workers of labels and "
        "change share most of their pages, so their peak is overstated."
    )
    return "Where the build's time went", note, [], table


def build_report(cfg: ReportConfig, layout: Layout, class_schema: str = "fusu17") -> Path:
    """Driver of rule ``report``: write ``report/index.html`` and its PNGs for the dataset at
    ``layout.root``.

    Reads: ``patches.parquet`` (required), HR / label / change GeoTIFFs of the sample patches,
    ``sentinel/<aoi>.zarr``, ``sentinel/<aoi>/months/*.json``, ``splits/leakage.json``,
    ``stats.json`` and the jobs' ``benchmarks/<rule>/<job>.tsv`` (sections for absent optional
    inputs say so instead of failing).

    Returns:
        Path of ``index.html``.
    """
    n_samples = cfg.n_samples
    index = read_index_geo(layout.index())
    lut, names = rp.class_palette(class_schema)
    aois = sorted(index["aoi"].astype(str).unique()) if len(index) else []
    out_dir = layout.report_dir()
    with atomic_path(out_dir) as tmp:
        ensure_dir(tmp)
        sections: list[tuple[str, str, list[str], str]] = []
        # samples
        records = index.drop(columns=[index.geometry.name]) if hasattr(index, "geometry") else index
        recs = records.to_dict("records")
        cf = (
            index["change_fraction"].to_numpy(float)
            if "change_fraction" in index
            else np.zeros(len(index))
        )
        sums = month_summaries(layout, aois)
        coverage = month_coverage(layout, index)
        marks = {aoi: {m: rp.month_mark(sm, coverage.get(aoi, {}).get(m, {}).get(
                     "s2_clear_frac")) for m, sm in months.items()}
                 for aoi, months in sums.items()}
        sample_files = []
        for k, i in enumerate(rp.choose_samples(cf, n_samples)):
            name = f"sample_{k}.png"
            view = sample_view(layout, recs[i], marks.get(str(recs[i]["aoi"])))
            save_figure(rp.fig_sample(view, lut), tmp / name)
            sample_files.append(name)
        save_figure(rp.fig_legend(lut, names), tmp / "legend.png")
        sections.append(
            (
                "Sample patches",
                "T1, T2, labels in the class colours, binary change (red = changed, dark grey "
                "= unchanged, light blue-grey = ignored); monthly Sentinel-2 true colour (B4, "
                "B3, B2; 2-98 % stretch shared by all months) and Sentinel-1 VV of the "
                "footprint, the HR patch outlined in yellow. Months that are not plain L2A "
                "months with data are marked in red under their date (L1C fallback, no S2, no "
                "clear S2, no S1, skipped items). Chosen across the range of change fractions.",
                ["legend.png", *sample_files],
                "",
            )
        )
        # class histograms
        tables = {
            "split": rp.class_fractions(index, "split"),
            "city": rp.class_fractions(index, "city"),
        }
        save_figure(rp.fig_class_histograms(tables, lut, names), tmp / "class_hist.png")
        sections.append(
            (
                "Class histograms",
                "Pixel fractions of T1 + T2 labels (no data excluded) per split and per city.",
                ["class_hist.png"],
                "",
            )
        )
        # change map
        save_figure(rp.fig_change_map(index), tmp / "change_map.png")
        sections.append(
            (
                "Change fraction per patch",
                "Patch polygons of the dataset index "
                "(EPSG:4326) coloured by their share of changed pixels.",
                ["change_map.png"],
                "",
            )
        )
        # clear observations
        heat = rp.fig_clear_heatmap(*rp.heatmap_rows(coverage, sums))
        save_figure(heat, tmp / "clear_obs.png")
        sections.append(
            (
                "Clear observations per month",
                "Mean number of clear Sentinel-2 and valid Sentinel-1 observations per pixel "
                "and month over the footprints. 'L1C': the month was composited from L1C "
                "(no L2A scene); 'none': no clear S2 pixel (S2 rows) or no S1 scene (S1 rows). "
                "The table gives each month's product, scenes, share of footprint pixels with "
                "a clear S2 observation, and why a month is marked.",
                ["clear_obs.png"],
                rp.html_table(rp.month_rows(sums, coverage)),
            )
        )
        # fetch summary
        sections.append(
            (
                "Sentinel fetch summary",
                "Totals of the per-month job summaries (sentinel/<aoi>/months/*.json).",
                [],
                rp.html_table(rp.fetch_summary_rows(sums)),
            )
        )
        # leakage
        leak = read_json_if_exists(layout.splits_dir() / "leakage.json")
        leak_html = (
            rp.html_table(rp.leakage_rows(leak))
            if leak is not None
            else "<p class='empty'>(splits/leakage.json not found)</p>"
        )
        note = rp.LEAKAGE_NOTE + (f" Columns: {leak.get('definition')}."
                               if isinstance(leak, dict) and leak.get("definition") else "")
        sections.append(("Split leakage report", note, [], leak_html))
        sections.append(
            (
                "Normalisation statistics (stats.json)",
                "",
                [],
                _stats_html(read_json_if_exists(layout.stats())),
            )
        )
        sections.append(_job_times_section(layout))
        page = rp.render_html(f"QA report: {layout.root.name}", _summary(layout, index), sections)
        write_text_atomic(tmp / "index.html", page)
        set_public_modes(tmp)
    log.info("QA report written to %s", out_dir / "index.html")
    return out_dir / "index.html"
