"""The FUSU release importer: both published layouts into the native layout, read back by the
project's dataset with values checked against the files, splits, errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.dataset.fusu_release import PATCH_BOX, lattice_position, month_of
from pipeline.dataset.release_import import ReleaseImport, import_main, import_release
from pipeline.errors import DatasetError
from pipeline.hr.change import binary_change
from pipeline.layout import Layout
from tests.release_helpers import (
    COLS,
    HR_PX,
    MONTHS,
    ROWS,
    labels,
    s1_db,
    s2_dn,
    write_official,
    write_release,
)

SPLITS_CFG = load_config({"splits": {"block_size_patches": 2}}).splits


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, dict]:
    base = tmp_path_factory.mktemp("release")
    src = write_release(base / "FUSU" / "Xian")
    layout = Layout.of(base / "results", "fusu")
    return layout, import_release(ReleaseImport(src, threads=2), layout, SPLITS_CFG)


def test_names_and_months_of_the_release() -> None:
    assert lattice_position("6_255", "x") == (6, 255)
    years = {"A": 2018, "B": 2019, "C": 2020}
    assert month_of("6_255_A_8.png", "6_255", years) == "2018-08"
    assert month_of("6_255_C_12.png", "6_255", years) == "2020-12"
    assert month_of("6_255_3.tif", "6_255", years) == "#3"
    assert month_of("6_2555_A_8.png", "6_255", years) is None  # another patch's
    with pytest.raises(DatasetError, match="is not '<row>_<col>'"):
        lattice_position("tile6_255", "im1/")
    with pytest.raises(DatasetError, match="year letter 'D'"):
        month_of("6_255_D_1.png", "6_255", years)


def test_the_release_layout_imports_into_the_native_layout(imported) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    layout, report = imported
    idx = pd.read_parquet(layout.index())
    assert len(idx) == len(ROWS) * len(COLS) == report["patches"]
    assert set(idx["patch_id"]) == {f"xian_r{r}_c{c}" for r in ROWS for c in COLS}
    assert report["layout"] == "release" and report["cities"] == {"xian": 36}
    assert report["sentinel"]["months"] == ["2018-11", "2018-12", "2019-01", "2019-02"]
    assert report["sentinel"]["s2_scale"] == 1e-4  # Earth Engine DN recognised
    # block splits on the lattice: every split used, guard patches between them
    assert set(idx["split"]) == {"train", "val", "test", "guard"}
    row = idx.set_index("patch_id").loc["xian_r6_c252"]
    t1, t2 = labels(6, 252)
    change = binary_change(t1, t2)
    assert row["changed_px"] == int((change == 1).sum()) > 0
    assert row["valid_px"] == int((change != 255).sum())
    assert row["hist_t1_0"] == 0 and sum(row[f"hist_t1_{v}"] for v in range(18)) == \
        HR_PX * (HR_PX - 1)  # the 255 strip is not counted
    from PIL import Image

    np.testing.assert_array_equal(np.asarray(Image.open(layout.root / row["change_bin"])), change)
    assert Path(row["hr_t1"]).is_absolute() and row["hr_t1"].endswith("im1/6_252.png")
    assert (row["t1"], row["t2"]) == ("2018-08", "2020-08") and not row["georeferenced"]
    stats = json.loads(layout.stats().read_text())
    assert stats["n_patches"]["train"] == int((idx["split"] == "train").sum())
    assert len(stats["sentinel"]["mean"]) == 14


def test_imported_samples_carry_the_release_values(imported) -> None:  # type: ignore[no-untyped-def]
    """Each sample's Sentinel cube is its own file's values in its months' order: S2 DN x 1e-4,
    masked (0) pixels NaN with count 0, S1 dB as stored; the HR patch is the central fifth."""
    pytest.importorskip("torch")
    from pipeline.dataset.torchds import FusuDataset

    layout, _ = imported
    ds = FusuDataset(layout.root, split=None, normalize=False)
    k = ds.patch_ids.index("xian_r7_c253")
    s = ds[k]
    assert tuple(s["t1"].shape) == (3, HR_PX, HR_PX)
    np.testing.assert_array_equal(s["label2"].numpy(), labels(7, 253)[1].astype(np.int64))
    assert s["meta"]["months"] == ["2018-11", "2018-12", "2019-01", "2019-02"]
    x, counts = s["sentinel"].numpy(), s["counts"].numpy()
    assert x.shape == (len(MONTHS), 14, 128, 128)
    for t in range(len(MONTHS)):
        np.testing.assert_allclose(x[t, :12, 3:, :], s2_dn(7, 253, t)[:, 3:, :] * 1e-4,
                                   rtol=0, atol=1e-4 / 2)  # stored as whole DN
        np.testing.assert_allclose(x[t, 12:], s1_db(7, 253, t), rtol=0, atol=1e-6)
        assert (counts[t, 0, :3] == 0).all() and (counts[t, 0, 3:] == 1).all()
        assert (counts[t, 1] == 1).all()
    assert np.all(x[:, :12, :3, :] == 0)  # no observation: 0 after NaN -> 0, count 0
    assert tuple(s["patch_box"].tolist()) == pytest.approx(PATCH_BOX)


def test_the_official_layout_keeps_its_split_folders_and_checks_label_bin(tmp_path: Path
                                                                          ) -> None:
    pytest.importorskip("torch")
    from pipeline.dataset.torchds import FusuDataset

    cells = {"train": [(3, 250), (3, 251), (4, 250)], "val": [(5, 250)], "test": [(6, 250)]}
    src = write_official(tmp_path / "official", cells)
    # a label_bin that disagrees on one patch's quadrant (1 = unchanged read the other way)
    from PIL import Image

    lb = src / "train" / "label_bin" / "3_250.png"
    a = np.asarray(Image.open(lb)).copy()
    a[:8, :8] = 1 - a[:8, :8]
    Image.fromarray(a).save(lb)
    layout = Layout.of(tmp_path / "res", "off")
    rep = import_release(ReleaseImport(src, city="Jiaxing"), layout, SPLITS_CFG)
    assert rep["layout"] == "official" and rep["cities"] == {"jiaxing": 5}
    assert rep["splits"] == {"train": 3, "val": 1, "test": 1, "guard": 0}
    assert rep["split_source"] == "official layout folders"
    valid = sum(int((binary_change(*labels(r, c)) != 255).sum()) for s in cells
                for r, c in cells[s])
    assert rep["label_bin_agreement"] == pytest.approx(1 - 64 / valid)
    # numbered Times files: month k = the k-th month from T1's (August 2018)
    assert rep["sentinel"]["months"] == ["2018-08", "2018-09", "2018-10", "2018-11"]
    ds = FusuDataset(layout.root, split="val", normalize=False)
    s = ds[0]
    assert s["meta"]["patch_id"] == "jiaxing_r5_c250"
    np.testing.assert_allclose(s["sentinel"].numpy()[2, 12], s1_db(5, 250, 2)[0])


def test_published_split_lists_are_used(tmp_path: Path) -> None:
    src = write_release(tmp_path / "rel" / "xian", sentinel=False)
    names = [f"{r}_{c}" for r in ROWS for c in COLS]
    (src / "train.txt").write_text("\n".join(f"{n}.png" for n in names[:30]) + "\n")
    (src / "val.txt").write_text("\n".join(names[30:33]))
    (src / "test.txt").write_text("\n".join(names[33:35]))  # one patch in no list
    layout = Layout.of(tmp_path / "res", "lists")
    rep = import_release(ReleaseImport(src, sentinel=False), layout, SPLITS_CFG)
    assert rep["splits"] == {"train": 30, "val": 3, "test": 2, "guard": 1}
    assert rep["split_source"].startswith("published split lists")
    assert rep["sentinel"] == {"months": []}
    assert (layout.split_list("train")).read_text().count("xian_r") == 30


def test_hr_only_import_trains_and_evaluates_with_every_score(imported, tmp_path: Path
                                                              ) -> None:
    """The release imported HR-only, a few CPU steps of the HR-only model; the official
    preset and the default FUSU-Net on the Sentinel import; every score reported."""
    pytest.importorskip("torch")
    pytest.importorskip("timm")
    from pipeline.train.drivers import train_model

    layout, _ = imported
    common = {"batch_size": 2, "num_workers": 0, "max_steps": 2, "eval_every": 2,
              "checkpoint_every": 2, "hr_size_px": 64, "max_eval_batches": 2}
    for run, extra in (("default", {"tiny": True}),
                       ("official", {"preset": "official", "hr_size_px": 512}),
                       ("hr", {"tiny": True, "months": 0})):
        cfg = load_config({"train": {**common, **extra, "run": run}}).train
        res = train_model(cfg, layout, threads=2, progress=False)
        assert res["step"] == 2
        test = res["test"]
        for key in ("seg_miou", "bc", "scs", "bc_den", "scs_den", "scd_miou"):
            assert key in test and (test[key] is None or 0.0 <= test[key] <= 1.0), (run, key)
        for key in ("second", "fusu_official_val"):
            assert set(test[key]) == {"score", "miou", "sek"}, (run, key)
    saved = json.loads((layout.train_dir("official") / "metrics.json").read_text())
    assert saved["config"]["optimizer"] == "official" and saved["model"] == "official"
    assert saved["config"]["loss"] == "official"
    assert saved["config"]["change_fusion"] == "paper"
    # the comparison table of the reproduction recipe
    from pipeline.train.compare import compare_main as compare

    assert compare([str(layout.root), "official", "default"]) == 0
    md = (layout.root / "train" / "compare.md").read_text()
    assert "| official | official |" in md and "| default | fusunet |" in md
    second = json.loads((layout.train_dir("default") / "metrics.json").read_text())
    assert f"{100 * second['test']['second']['score']:.2f}" in md
    assert compare([str(layout.root), "never-trained"]) == 1


def test_release_errors_name_the_file(tmp_path: Path) -> None:
    src = write_release(tmp_path / "a" / "xian", sentinel=False)
    (src / "im2" / "4_251.png").unlink()
    layout = Layout.of(tmp_path / "res", "bad")
    with pytest.raises(DatasetError, match=r"missing, e.g. \['im2/4_251\.\*'\]"):
        import_release(ReleaseImport(src, sentinel=False), layout, SPLITS_CFG)
    src2 = write_release(tmp_path / "b" / "xian", sentinel=False)
    from PIL import Image

    Image.fromarray(np.full((HR_PX, HR_PX), 200, np.uint8)).save(src2 / "im1_label" / "5_252.png")
    with pytest.raises(DatasetError, match=r"5_252\.png: values \[200\] are not FUSU classes"):
        import_release(ReleaseImport(src2, sentinel=False), layout, SPLITS_CFG)
    twice = write_official(tmp_path / "d", {"train": [(3, 250)], "val": [(3, 250)]})
    with pytest.raises(DatasetError, match=r"patch\(es\) \['d_r3_c250'\] appear twice"):
        import_release(ReleaseImport(twice), layout, SPLITS_CFG)
    (tmp_path / "c" / "notes").mkdir(parents=True)
    with pytest.raises(DatasetError, match="holds neither im1/"):
        import_release(ReleaseImport(tmp_path / "c"), layout, SPLITS_CFG)


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_release(tmp_path / "rel", sentinel=False)
    rc = import_main([str(src), "--city", "Xiuzhou", "--dataset", "cli", "--results-dir",
               str(tmp_path / "out"), "--no-sentinel", "--config",
               '{"splits": {"block_size_patches": 2}}'])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["patches"] == 36 and out["cities"] == {"xiuzhou": 36}
    assert import_main([str(tmp_path / "nothing"), "--results-dir", str(tmp_path / "out")]) == 1
