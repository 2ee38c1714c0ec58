"""Tests of the QA report: pure figure/table helpers, the stage, and rendering in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.config import ReportConfig
from pipeline.dataset import report as rp
from pipeline.dataset.qa import build_report as run_report
from pipeline.layout import Layout
from tests.torchds_helpers import make_dataset

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Injected into a copy of the page: records, after the load event, every image's natural size.
_PROBE = """<script>
window.addEventListener('load', function () {
  var out = [];
  for (var i = 0; i < document.images.length; i++) {
    var im = document.images[i];
    out.push([im.getAttribute('src'), im.complete, im.naturalWidth, im.naturalHeight]);
  }
  document.body.setAttribute('data-imgcheck', JSON.stringify(out));
});
</script>"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    lay = make_dataset(tmp_path_factory.mktemp("report"))
    page = run_report(ReportConfig(n_samples=3), lay)
    assert page == lay.report_dir() / "index.html"
    return lay


def _img_srcs(page: Path) -> list[str]:
    return re.findall(r"<img src='([^']+)'", page.read_text())


def test_report_files_and_pngs_not_blank(built: Layout) -> None:
    page = built.report_dir() / "index.html"
    srcs = _img_srcs(page)
    assert set(srcs) == {
        "legend.png",
        "sample_0.png",
        "sample_1.png",
        "sample_2.png",
        "class_hist.png",
        "change_map.png",
        "clear_obs.png",
    }
    for s in srcs:
        img = np.asarray(Image.open(built.report_dir() / s).convert("RGB"), dtype=np.float64)
        assert img.shape[0] > 50 and img.shape[1] > 50, s
        assert img.std() > 5.0, f"{s} looks blank"
    # nothing but the page and its images
    assert sorted(p.name for p in built.report_dir().iterdir()) == sorted([*srcs, "index.html"])


def test_report_tables_known_values(built: Layout) -> None:
    text = (built.report_dir() / "index.html").read_text()
    assert "<script" not in text and "http" not in text  # self-contained, offline
    # fetch summary: alpha requests 2+3+4, retries 0+1+0; beta 2+3, 0+1; all 14 / 2
    rows = re.findall(
        r"<tr><td>(alpha|beta|all)</td><td>(\d+)</td><td>([\d,]+)</td>"
        r"<td>[\d,]+</td><td>(\d+)</td>",
        text,
    )
    assert rows[0][:2] == ("alpha", "3")  # 3 months
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("alpha", "9", "1"),
        ("beta", "5", "1"),
        ("all", "14", "2"),
    ]
    assert "<td>train-test</td>" in text and "<td>xian</td>" in text
    assert "B8A" in text and "<td>665 nm</td>" in text  # stats table with wavelengths
    assert text.count("<td>C-band (5.55 cm)</td>") == 2  # VV, VH: not "55,465,763" nm
    assert "55,465,763" not in text
    assert "<td>6</td>" in text  # 6 patches in the summary
    # the leakage table says what may be non-zero and why
    assert "The val-test row may be non-zero: both splits are held out" in text
    # every month of every AOI has a row in the months table, with its product
    months = re.findall(r"<tr><td>(alpha|beta)</td><td>(\d{4}-\d{2})</td><td>(\w+)</td>", text)
    assert len(months) >= 5 and {m[2] for m in months} == {"L2A", "L1C"}
    assert "<td>L1C fallback</td>" in text


def test_change_panel_is_visible(built: Layout) -> None:
    """The most changed sample (sample_0) shows its changed pixels in red inside a frame (they
    used to be white on the white page)."""
    img = np.asarray(Image.open(built.report_dir() / "sample_0.png").convert("RGB"), np.int32)
    red = (img[..., 0] > 200) & (img[..., 1] < 70) & (img[..., 2] < 90)
    assert red.sum() > 200
    white = (img > 245).all(axis=-1)
    assert not white[red.any(axis=1)][:, red.any(axis=0)].all()


def test_month_marks_and_rows() -> None:
    plain = {"s2_product": "L2A", "n_scenes": {"s2": 4, "s1": 3}}
    assert rp.month_mark(plain, 0.9) == ""
    assert rp.month_mark({**plain, "s2_product": "L1C"}, 0.5) == "L1C fallback"
    assert rp.month_mark(plain, 0.0) == "no clear S2"
    empty = {"s2_product": None, "n_scenes": {"s2": 0, "s1": 0},
             "skipped_items": [{"item": "a"}, {"item": "b"}]}
    assert rp.month_mark(empty, 0.0) == "no S2; no S1; 2 items skipped"
    rows = rp.month_rows({"x": {"2020-01": plain, "2020-02": empty}},
                         {"x": {"2020-01": {"s2_clear_frac": 0.9, "s2_mean": 2.0,
                                            "s1_mean": 3.0}}})
    assert [(r["month"], r["S2 product"], r["mark"]) for r in rows] == [
        ("2020-01", "L2A", ""), ("2020-02", "none", "no S2; no S1; 2 items skipped")]
    assert rows[0]["S2 clear px share"] == 0.9 and rows[1]["S2 clear px share"] is None


def test_wavelength_labels() -> None:
    from pipeline.bands import S1_WAVELENGTH_NM
    assert rp.wavelength_label(664.6) == "665 nm"
    assert rp.wavelength_label(S1_WAVELENGTH_NM) == "C-band (5.55 cm)"


def test_report_rerun_replaces_folder(built: Layout, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(built.root, root)
    (root / "report" / "stale.png").write_bytes(b"x")
    run_report(ReportConfig(n_samples=1), Layout(root))
    names = sorted(p.name for p in (root / "report").iterdir())
    assert "stale.png" not in names and "sample_1.png" not in names and "sample_0.png" in names


def test_report_shows_where_the_builds_time_went(built: Layout, tmp_path: Path) -> None:
    """The jobs' benchmark files (Snakemake's own writer) become a per-rule table, most time
    first; a file that cannot be read is named, not fatal; no files: an empty table."""
    from tests.job_benchmark_helpers import write_job_benchmark

    text = (built.report_dir() / "index.html").read_text()
    assert "Where the build&#x27;s time went" in text or "Where the build's time went" in text
    assert "(none)" in text.split("time went", 1)[1]
    lay = Layout(tmp_path / "copy")
    shutil.copytree(built.root, lay.root)
    for rule, job, sec, rss, cpu in (("tile", "demo", 4.0, 380.0, 6.5),
                                     ("sentinel_month", "demo/2019-11", 5.0, 900.0, 9.0),
                                     ("sentinel_month", "demo/2019-12", 7.0, 1003.0, 13.0)):
        write_job_benchmark(lay.job_benchmark(rule, job), sec, rss=rss, cpu=cpu)
    (lay.job_benchmarks_dir() / "labels").mkdir()
    (lay.job_benchmarks_dir() / "labels" / "demo.tsv").write_text("garbage\n")
    run_report(ReportConfig(n_samples=1), lay)
    section = (lay.report_dir() / "index.html").read_text().split("time went", 1)[1]
    rows = re.findall(r"<tr><td>(\w+)</td><td>(\d+)</td><td>([\d.,]+)</td>", section)
    assert rows == [("sentinel_month", "2", "12"), ("tile", "1", "4"), ("all", "3", "16")]
    assert "<td>demo/2019-12</td>" in section and "<td>1,003</td>" in section
    assert "Not read: " in section and "labels/demo.tsv" in section


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium missing: install it with "
    "'apt-get update && apt-get install -y chromium' to run the browser check",
)
def test_report_renders_in_headless_chromium(built: Layout, tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(built.report_dir(), site)
    page = site / "index.html"
    page.write_text(page.read_text().replace("</body>", _PROBE + "</body>"))
    profile = tmp_path / "profile"
    cmd = [
        str(CHROMIUM),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = re.search(r"data-imgcheck=\"([^\"]*)\"", proc.stdout)
    assert m, f"probe did not run; DOM starts: {proc.stdout[:500]!r}"
    checks = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(checks) == len(_img_srcs(built.report_dir() / "index.html")) == 7
    for src, complete, w, h in checks:
        assert complete and w > 0 and h > 0, f"{src} did not load in Chromium"
        with Image.open(site / src) as im:
            assert (w, h) == im.size


# --------------------------------------------------------------------------- pure helpers


def test_robust_stretch_known_answer() -> None:
    x = np.stack([np.arange(100, dtype=np.float32).reshape(10, 10)] * 3)
    x[1] = 7.0  # constant channel
    x[2, 0, 0] = np.nan
    out = rp.robust_stretch(x, 0, 100)
    assert out[0, 0, 0] == 0.0 and out[0, 9, 9] == 1.0
    assert out[0, 5, 0] == pytest.approx(50 / 99)
    assert np.all(out[1] == 0.5)
    assert out[2, 0, 0] == 0.0 and np.isfinite(out).all()


def test_colorize_and_palette() -> None:
    lut, names = rp.class_palette("fusu17")
    assert len(names) == 18 and names[8] == "Orchard"
    assert tuple(lut[2]) == (8, 255, 230) and tuple(lut[255]) == (0, 0, 0)
    rgb = rp.colorize(np.array([[2, 255]], np.uint8), lut)
    assert rgb.shape == (1, 2, 3) and tuple(rgb[0, 0]) == (8, 255, 230)
    ch = rp.colorize_change(np.array([[0, 1, 255]], np.uint8))
    assert [tuple(c) for c in ch[0]] == [(60, 60, 60), (230, 25, 45), (170, 190, 215)]


def test_choose_samples_spread() -> None:
    cf = np.array([0.1, 0.9, 0.0, np.nan, 0.5])
    assert rp.choose_samples(cf, 3) == [1, 0, 3]  # most changed, middle rank, least
    assert rp.choose_samples(cf, 10) == [1, 4, 0, 2, 3]
    assert rp.choose_samples(cf, 0) == []


def test_clear_obs_mask_and_means() -> None:
    from pipeline.sentinel.blocks import footprint_union_mask

    mask = footprint_union_mask((6, 6), np.array([0, 3]), np.array([0, 3]), np.array([2, 2]))
    assert mask.sum() == 8 and mask[0, 0] and mask[4, 4] and not mask[2, 2]
    counts = np.zeros((2, 6, 6), np.uint8)
    counts[1][mask] = 4
    assert rp.mean_counts(counts, mask).tolist() == [0.0, 4.0]
    assert rp.mean_counts(counts, None)[1] == pytest.approx(32 / 36)


def test_class_fractions_known_answer() -> None:
    df = pd.DataFrame(
        {
            "split": ["train", "train", "val"],
            "hist_t1_0": [1, 1, 0],
            "hist_t1_1": [0, 2, 4],
            "hist_t2_0": [1, 0, 0],
            "hist_t2_1": [0, 1, 0],
        }
    )
    fr = rp.class_fractions(df, "split", n_classes=2)
    assert fr.loc["train"].tolist() == pytest.approx([0.5, 0.5])
    assert fr.loc["val"].tolist() == pytest.approx([0.0, 1.0])


def test_tables_escape_and_flatten() -> None:
    rows = rp.leakage_rows({"overall": {"guard_patches": 2, "train-val": {"n_leaking": 0}}})
    assert rows == [
        {"scope": "overall", "pair": "guard_patches", "value": 2},
        {"scope": "overall", "pair": "train-val", "n_leaking": 0},
    ]
    assert rp.leakage_rows({"a": {"b": 1}}) == [{"scope": "", "pair": "a.b", "value": 1}]
    t = rp.html_table([{"x": "<b>", "y": 1234567.0}, {"x": "z", "y": 0.12345}])
    assert "&lt;b&gt;" in t and "1,234,567" in t and "0.1235" in t
    sums = rp.fetch_summary_rows({"a": {"2020-01": {"requests": 2, "pixels": 10, "retries": 1}}})
    assert sums == [
        {
            "aoi": "a",
            "months": 1,
            "requests": 2.0,
            "pixels": 10.0,
            "retries": 1.0,
            "bytes": 0.0,
            "seconds": 0.0,
            "s2_product": "",
        }
    ]
