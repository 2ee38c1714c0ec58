"""Cloud-mask cost and the accuracy price of classifying at a coarser grid.

    python -m benchmarks.cloud_mask [--factors 2 3 6] [--repeat 3] [--rows 856]

On the real Sentinel-2 L1C chip of the s2cloudless 1.1.0 source distribution (``s2_im``, 856 x
512 px, all 13 bands; fetched once with ``pip download`` into ``$FUSU_TEST_CACHE``, default
``~/.cache/fusu-pipeline``, like ``tests/unit/test_s2cloudless_real.py``), it measures

* the pipeline's classifier
  (:class:`pipeline.sentinel.cloud_probability.CloudDetector`: s2cloudless' LightGBM model
  evaluated with ONNX Runtime, all cores) in pixels per second, the cost that dominates a
  month job, against s2cloudless' own predictor (LightGBM's ``Booster.predict``), and whether
  the two give identical probabilities;
* for each ``--factor`` f, the mask obtained by averaging the 10 model bands over f x f pixel
  cells, classifying the cells and giving every pixel its cell's probability (nearest) or a
  bilinear interpolation of the cell probabilities, against the mask of the per-pixel
  classification (the ``gee`` preset: whole-percent probability > 40): pixels that differ,
  clouds missed (cloudy -> clear: contamination of the composite) and the time ratio.

The pipeline classifies every pixel (as Earth Engine's S2_CLOUD_PROBABILITY does); this
benchmark is the measurement behind not offering a coarser grid (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.goals import Goal, report
from pipeline.io.atomic import atomic_path

SDIST = "s2cloudless-1.1.0.tar.gz"
MEMBER = "s2cloudless-1.1.0/s2cloudless/TestInputs/input_arrays.npz"


def reference_chip() -> Path:
    """The cached ``input_arrays.npz`` of the s2cloudless 1.1.0 sdist (downloaded once).

    Safe for concurrent callers (parallel test workers on a fresh machine): the sdist is
    downloaded into a folder of this process's own and the chip written through
    :func:`pipeline.io.atomic.atomic_path`, so both files appear under their final names only
    once complete."""
    cache = Path(os.environ.get("FUSU_TEST_CACHE", Path.home() / ".cache" / "fusu-pipeline"))
    npz = cache / "s2cloudless-1.1.0-input_arrays.npz"
    if npz.is_file():
        return npz
    cache.mkdir(parents=True, exist_ok=True)
    if not (cache / SDIST).is_file():
        with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as d:
            try:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                                "--no-binary", ":all:", "s2cloudless==1.1.0", "-d", d],
                               check=True, capture_output=True, timeout=300)
            except (subprocess.SubprocessError, OSError) as exc:
                raise SystemExit(f"cannot download the s2cloudless 1.1.0 sdist into {cache} "
                                 f"({exc}): run once with network access") from None
            os.replace(Path(d) / SDIST, cache / SDIST)
    with tarfile.open(cache / SDIST) as tf:
        data = tf.extractfile(MEMBER)
        if data is None:
            raise SystemExit(f"{MEMBER} not found in {cache / SDIST}")
        with atomic_path(npz) as tmp:  # this process's own temporary, renamed when complete
            tmp.write_bytes(data.read())
    return npz


def coarse_probability(det: object, bands: np.ndarray, f: int, bilinear: bool) -> np.ndarray:
    """(h, w) probability from classifying f x f cell means of (10, h, w) reflectances (h, w
    multiples of f), upsampled to the pixels by repetition (the pipeline's own
    ``CloudDetector.cell_probability``, what ``sentinel.cloud_grid_factor`` runs) or
    bilinearly (cell centres; not offered)."""
    from scipy import ndimage

    n, h, w = bands.shape
    if not bilinear:
        ones = np.ones((h, w), bool)
        return det.cell_probability(bands, ones, ones, f)[0]  # type: ignore[attr-defined]
    cells = bands.reshape(n, h // f, f, w // f, f).mean(axis=(2, 4))
    p = det.probability(cells, np.ones(cells.shape[1:], bool))  # type: ignore[attr-defined]
    # pixel centre (i + 0.5) lies at cell coordinate (i + 0.5) / f - 0.5
    yy = (np.arange(h) + 0.5) / f - 0.5
    xx = (np.arange(w) + 0.5) / f - 0.5
    grid = np.meshgrid(yy, xx, indexing="ij")
    return ndimage.map_coordinates(p.astype(np.float64), grid, order=1, mode="nearest")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--factors", type=int, nargs="+", default=[2, 3, 6])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each classification")
    ap.add_argument("--rows", type=int, default=856, help="use the chip's first rows (speed)")
    ap.add_argument("--threshold", type=int, default=40)
    args = ap.parse_args()

    from pipeline.io.scenes import L1C_FILE_BANDS
    from pipeline.sentinel.cloud_probability import S2CLOUDLESS_BANDS, CloudDetector

    im = np.load(reference_chip())["s2_im"][0][: args.rows]
    bands = np.stack([im[..., L1C_FILE_BANDS.index(b)] for b in S2CLOUDLESS_BANDS])
    bands = bands.astype(np.float32)
    det = CloudDetector()
    ones = np.ones(bands.shape[1:], bool)
    det.probability(bands[:, :8, :8], ones[:8, :8])  # load the model outside the timing

    def timed(fn: object) -> tuple[float, np.ndarray]:
        best, out = float("inf"), None
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = fn()  # type: ignore[operator]
            best = min(best, time.perf_counter() - t)
        assert out is not None
        return best, out

    t_full, p_full = timed(lambda: det.probability(bands, ones))
    h, w = bands.shape[1:]
    print(f"chip {h} x {w} px, {os.cpu_count()} CPUs: per-pixel classification "
          f"{h * w / t_full / 1e3:.0f} kpx/s ({t_full:.2f} s)")
    # the predictor used before: LightGBM's own Booster.predict through s2cloudless
    from s2cloudless import S2PixelCloudDetector

    package = S2PixelCloudDetector(all_bands=False)
    rows = np.ascontiguousarray(bands.reshape(len(bands), -1).T)[None, :, None, :]
    t_lgb, p_lgb = timed(lambda: package.get_cloud_probability_maps(rows)[0, :, 0])
    n_differ = int(np.sum(p_lgb.reshape(h, w) != p_full))
    same = n_differ == 0
    print(f"LightGBM's predictor (s2cloudless' own): {h * w / t_lgb / 1e3:.0f} kpx/s "
          f"({t_lgb:.2f} s); the shipped ONNX evaluation is {t_lgb / t_full:.2f}x faster, "
          f"probabilities {'identical' if same else 'DIFFERENT'}")
    thr = args.threshold
    print(f"{'factor':>6} {'upsampling':>10} {'differ':>8} {'missed':>8} {'added':>8} "
          f"{'time ratio':>10}")
    for f in args.factors:
        hh, ww = h // f * f, w // f * f
        ref = np.rint(p_full[:hh, :ww] * 100.0) > thr
        cut = bands[:, :hh, :ww]
        for bilinear in (False, True):
            t_c, p_c = timed(lambda f=f, b=bilinear, c=cut: coarse_probability(  # type: ignore[misc]
                det, c, f, b))
            got = np.rint(p_c * 100.0) > thr
            print(f"{f:>6} {'bilinear' if bilinear else 'nearest':>10} "
                  f"{np.mean(got != ref):>8.2%} {np.mean(ref & ~got):>8.2%} "
                  f"{np.mean(~ref & got):>8.2%} {t_c / t_full:>10.3f}")
    print("missed = cloudy in the per-pixel mask, clear at the coarser grid (clouds averaged "
          "into the composite)")
    return report([Goal("chip pixels whose probability differs from LightGBM's", n_differ,
                        "<=", 0)])


if __name__ == "__main__":
    raise SystemExit(main())
