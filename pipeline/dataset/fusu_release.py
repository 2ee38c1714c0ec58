"""The FUSU release's file layouts and naming, read into one plan (pure: names in, plan out;
the importer :func:`pipeline.dataset.release_import.import_release` does the I/O).

Two layouts are recognised, per city folder (a folder holding ``im1/``; the release root itself
or each of its sub-folders, one per city or district):

* **release** (the dataset README at yuanshuai0914/FUSU 317cc6b)::

      im1/6_255.png  im1_label/6_255.png  im2/6_255.png  im2_label/6_255.png
      A/{8-12}/6_255_A_8.png   B/{1-12}/6_255_B_1.png   C/{1-8}/6_255_C_1.png

  ``{A, B, C}`` are the years and ``{1-12}`` the months (the paper: August 2018 to August 2020,
  25 months, so A = 2018, B = 2019, C = 2020; :data:`YEARS`, overridable). Split lists
  ``train.txt`` / ``val.txt`` / ``test.txt`` beside ``im1/`` (one patch name per line) are used
  when present, as published with the release.
* **official** (the official code's ``datasets/change_detection.py``)::

      {train,val,test}/{im1,im2,label1,label2,label_bin}/<id>.png
      {train,val,test}/Times/**/<id>_<suffix>.tif

  the split is the folder; a Times file's suffix is ``<year letter>_<month>`` as in the
  release, or ``<k>`` (the k-th month, 1 = the first, as the project's export writes them).

Patch names ``<a>_<b>`` are read as lattice positions: row ``a``, column ``b`` of the city's
grid of 512 px patches (the images are not georeferenced: the authors do not publish
coordinates). They place each patch on a metric lattice (side ``gsd_m`` x 512 m) for the
leakage-free block splits; the Sentinel cube of a patch is known only relative to it: 128 px
centred on the patch at 5x its extent, so the patch is the central fifth (:data:`PATCH_BOX`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from pipeline.errors import DatasetError

#: The release's year letters (the paper: monthly series August 2018 - August 2020).
YEARS: dict[str, int] = {"A": 2018, "B": 2019, "C": 2020}
#: The HR image dates (the paper: Google Earth images of August 2018 and August 2020).
T1_MONTH, T2_MONTH = "2018-08", "2020-08"
#: Folder of each file kind in the two layouts.
RELEASE_DIRS: dict[str, str] = {"t1": "im1", "t2": "im2", "label_t1": "im1_label",
                                "label_t2": "im2_label"}
OFFICIAL_DIRS: dict[str, str] = {"t1": "im1", "t2": "im2", "label_t1": "label1",
                                 "label_t2": "label2", "label_bin": "label_bin"}
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Footprint side of a release Sentinel cube (px) and the HR patch inside it, 5x smaller and
#: centred: (off_x, off_y, w, h) in footprint px.
FP_PX = 128
PATCH_BOX: tuple[float, float, float, float] = (FP_PX * 2 / 5, FP_PX * 2 / 5, FP_PX / 5,
                                                FP_PX / 5)
_NAME = re.compile(r"^(\d+)_(\d+)$")
_IMAGE_EXT = (".png", ".tif", ".tiff", ".jpg")


@dataclass(frozen=True)
class ReleasePatch:
    """One patch of the release: names, lattice position, split (None = not given) and files
    (relative to the release root, POSIX form): ``t1``, ``t2``, ``label_t1``, ``label_t2``,
    optional ``label_bin``; ``months`` = {``YYYY-MM`` (or ``#k`` for numbered files): file}."""

    city: str
    name: str
    row: int
    col: int
    split: str | None
    files: Mapping[str, str]
    months: Mapping[str, str] = field(default_factory=dict)

    @property
    def patch_id(self) -> str:
        """The native patch id ``<city>_r<row>_c<col>``."""
        return f"{self.city}_r{self.row}_c{self.col}"


def city_slug(name: str) -> str:
    """A folder name as an AOI / city name: lower case, ``[a-z0-9_]``."""
    s = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not s:
        raise DatasetError(f"release folder {name!r} gives no usable city name: rename it")
    return s if s[0].isalpha() else f"c_{s}"


def lattice_position(stem: str, where: str) -> tuple[int, int]:
    """``"6_255"`` -> (6, 255).

    Raises:
        DatasetError: a name that is not ``<row>_<col>`` (names the file).
    """
    m = _NAME.match(stem)
    if not m:
        raise DatasetError(
            f"{where}: patch name {stem!r} is not '<row>_<col>' as in the FUSU release "
            "(im1/6_255.png); rename the files or import another layout")
    return int(m.group(1)), int(m.group(2))


def month_of(file_name: str, stem: str, years: Mapping[str, int]) -> str | None:
    """The month of a Sentinel file of patch ``stem``: ``6_255_A_8.png`` -> ``"2018-08"``,
    ``6_255_3.tif`` -> ``"#3"`` (the 3rd month, numbered), None if the file is another
    patch's."""
    base = PurePosixPath(file_name).stem
    if not base.startswith(stem + "_"):
        return None
    rest = base[len(stem) + 1:]
    m = re.fullmatch(r"([A-Za-z])_(\d{1,2})", rest)
    if m:
        letter, month = m.group(1).upper(), int(m.group(2))
        if letter not in years:
            raise DatasetError(
                f"Sentinel file {file_name}: year letter {letter!r} has no year (known: "
                f"{dict(years)}); pass it with --years {letter}=YYYY")
        if not 1 <= month <= 12:
            raise DatasetError(f"Sentinel file {file_name}: month {month} is not 1..12")
        return f"{years[letter]:04d}-{month:02d}"
    if re.fullmatch(r"\d+", rest):
        return f"#{int(rest)}"
    return None


def image_files(names: Sequence[str]) -> dict[str, str]:
    """{stem: file name} of the image files among ``names``."""
    return {PurePosixPath(n).stem: n for n in names if n.lower().endswith(_IMAGE_EXT)}


def collect_city(
    city: str, prefix: str, dirs: Mapping[str, Sequence[str]], kinds: Mapping[str, str],
    split: str | None, sentinel: Sequence[tuple[str, str]], years: Mapping[str, int],
) -> list[ReleasePatch]:
    """The patches of one city folder (or one split folder of the official layout).

    Args:
        city: city (AOI) name; prefix: the folder relative to the release root ("" = root).
        dirs: {folder name: file names in it} for the folders of ``kinds``.
        kinds: {file kind: folder} (:data:`RELEASE_DIRS` / :data:`OFFICIAL_DIRS`).
        split: the split of every patch (official layout) or None.
        sentinel: (relative folder, file name) of every Sentinel file under the city folder.
        years: year letter -> year.

    Raises:
        DatasetError: a patch missing one of its images or labels (names the files), or no
            patch at all.
    """
    where = prefix or "the release root"
    t1 = image_files(dirs.get(kinds["t1"], []))
    if not t1:
        raise DatasetError(f"{where}: no images in {kinds['t1']}/")
    files: dict[str, dict[str, str]] = {s: {} for s in t1}
    missing: list[str] = []
    for kind, folder in kinds.items():
        have = image_files(dirs.get(folder, []))
        for s in t1:
            if s in have:
                files[s][kind] = _join(prefix, folder, have[s])
            elif kind != "label_bin":
                missing.append(_join(prefix, folder, f"{s}.*"))
    if missing:
        raise DatasetError(
            f"{where}: {len(missing)} file(s) missing, e.g. {missing[:3]}: every patch needs "
            f"{', '.join(k for k in kinds.values() if k != 'label_bin')}")
    by_stem: dict[str, dict[str, str]] = {s: {} for s in t1}
    for rel, name in sentinel:
        stem = name.split("_", 2)
        if len(stem) < 3:
            continue
        s = f"{stem[0]}_{stem[1]}"
        if s in by_stem:
            m = month_of(name, s, years)
            if m is not None:
                by_stem[s][m] = _join(prefix, rel, name)
    out = []
    for s in sorted(t1, key=lambda v: lattice_position(v, where)):
        r, c = lattice_position(s, where)
        out.append(ReleasePatch(city, s, r, c, split, files[s], by_stem[s]))
    return out


def _join(*parts: str) -> str:
    return str(PurePosixPath(*[p for p in parts if p]))


def resolve_months(patches: Sequence[ReleasePatch]) -> list[str]:
    """The series' months, in order: the ``YYYY-MM`` months of every patch (union), or, for
    numbered files (``#k``), T1's month onward (``#1`` = :data:`T1_MONTH`).

    Raises:
        DatasetError: numbered and named month files mixed.
    """
    keys = {m for p in patches for m in p.months}
    numbered = {k for k in keys if k.startswith("#")}
    if numbered and numbered != keys:
        raise DatasetError("the release mixes numbered (<id>_<k>) and named (<id>_A_8) "
                           "Sentinel files: import one layout at a time")
    if not numbered:
        return sorted(keys)
    y, m = (int(v) for v in T1_MONTH.split("-"))
    n = max(int(k[1:]) for k in numbered)
    return [f"{y + (m - 1 + i) // 12:04d}-{(m - 1 + i) % 12 + 1:02d}" for i in range(n)]


def month_file(p: ReleasePatch, months: Sequence[str], t: int) -> str | None:
    """The file of month ``months[t]`` of patch ``p`` (named or numbered), or None."""
    return p.months.get(months[t]) or p.months.get(f"#{t + 1}")


def lattice_boxes(rows: np.ndarray, cols: np.ndarray, side_m: float) -> tuple[Any, Any]:
    """(patch boxes, footprint boxes) of lattice positions in a local metric frame (x east =
    column * side, y north = -row * side): the geometries the block splits need."""
    from shapely.geometry import box

    patches = np.array([box(c * side_m, -(r + 1) * side_m, (c + 1) * side_m, -r * side_m)
                        for r, c in zip(rows.tolist(), cols.tolist(), strict=True)], dtype=object)
    fps = np.array([b.buffer(2 * side_m, join_style="mitre") for b in patches], dtype=object)
    return patches, fps


def assign_lists(patches: Sequence[ReleasePatch], lists: Mapping[str, Sequence[str]]
                 ) -> list[str | None]:
    """The split of every patch from published split lists ({split: names, with or without
    extension, optionally ``<city>/`` prefixed}); None where a patch is in no list.

    Raises:
        DatasetError: a name in two lists.
    """
    where: dict[str, str] = {}
    for split, names in lists.items():
        for n in names:
            key = PurePosixPath(n).stem if "/" not in n else n.rsplit(".", 1)[0]
            if key in where and where[key] != split:
                raise DatasetError(f"patch {n!r} is in both {where[key]}.txt and {split}.txt")
            where[key] = split
    return [where.get(f"{p.city}/{p.name}", where.get(p.name)) for p in patches]


def s2_to_reflectance_factor(sample: np.ndarray) -> float:
    """1e-4 when S2 values look like Earth Engine DN (reflectance x 10000: the 99th
    percentile of the finite non-zero values above 2), else 1 (already reflectance)."""
    v = np.asarray(sample, np.float64)
    v = v[np.isfinite(v) & (v != 0)]
    if v.size == 0:
        return 1.0
    return 1e-4 if float(np.percentile(v, 99)) > 2.0 else 1.0


def split_cube(cube: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                        np.ndarray]:
    """One release month (14, h, w) -> (s2 reflectance (12, h, w) NaN = none, s2 count,
    s1 dB (2, h, w), s1 count): a pixel is no data in S2 where its 12 S2 values are all 0 or
    any is not finite (Earth Engine exports write masked pixels as 0), in S1 likewise; the
    count is 1 where a value is present (the release has no counts)."""
    a = np.asarray(cube, np.float32)
    if a.ndim != 3 or a.shape[0] != 14:
        raise DatasetError(f"a release Sentinel month has shape {a.shape}, expected (14, h, w)"
                           " (12 Sentinel-2 bands then VV, VH)")
    s2, s1 = a[:12] * np.float32(factor), a[12:]
    ok2 = np.isfinite(s2).all(axis=0) & (s2 != 0).any(axis=0)
    ok1 = np.isfinite(s1).all(axis=0) & (s1 != 0).any(axis=0)
    s2 = np.where(ok2, s2, np.float32(np.nan)).astype(np.float32)
    s1 = np.where(ok1, s1, np.float32(np.nan)).astype(np.float32)
    return s2, ok2.astype(np.uint8), s1, ok1.astype(np.uint8)
