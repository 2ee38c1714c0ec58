"""Output layout: every path the pipeline writes, in one place (pure path arithmetic).

Native layout under ``<results_dir>/<dataset>/`` (see docs/formats.md)::

    aois/<aoi>/patches.parquet        tile index (GeoParquet, HR CRS): one row per patch
    aois/<aoi>/hr/{t1,t2}/<id>.tif     HR RGB patches (uint8, tiled, deflate)
    aois/<aoi>/grid.json              the AOI's 10 m Sentinel grid + footprint rule
    aois/<aoi>/footprints.parquet     tile index + footprint columns
    aois/<aoi>/footprints.gpkg        footprints as polygons (grid CRS)
    aois/<aoi>/footprints_shp/        the same as ESRI shapefile (optional)
    aois/<aoi>/labels/{t1,t2}/<id>.tif 17-class labels (uint8, 255 = no data, colour table)
    aois/<aoi>/labels.parquet         per-patch class histograms
    aois/<aoi>/change/bin/<id>.tif    binary change (uint8 0/1, 255 = ignored)
    aois/<aoi>/change/fromto/<id>.tif from-to change (uint16 y1*18+y2, 65535 = ignored)
    aois/<aoi>/change.parquet         per-patch change fraction
    sentinel/<aoi>.zarr               monthly S2/S1 mosaic cube of the AOI grid (read-optimised:
                                      chunks (all months, all bands, 64, 64), Blosc-LZ4; built
                                      from staging.zarr by rule ``sentinel``)
    sentinel/<aoi>/staging.zarr       write-optimised mosaic the month jobs fill (chunks
                                      (1 month, all bands, 64, 64))
    sentinel/<aoi>/months/<YYYY-MM>.json  per AOI-month fetch summary (job output)
    sentinel/<aoi>/ledger/<YYYY-MM>/  per-block completion markers (resume)
    patches.parquet                   merged index with split column
    splits/, stats.json, stac/, report/index.html, export/fusu/, train/
    benchmarks/<rule>/<job>.tsv       each job's wall time, peak memory and CPU time as
                                      Snakemake measured it (its ``benchmark:`` file)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Paths of one dataset build. ``root`` = ``<results_dir>/<dataset>``."""

    root: Path

    @classmethod
    def of(cls, results_dir: str | Path, dataset: str) -> Layout:
        return cls(Path(results_dir) / dataset)

    # ---- each job's time and memory: Snakemake's ``benchmark:`` files
    def job_benchmarks_dir(self) -> Path:
        return self.root / "benchmarks"

    def job_benchmark(self, rule: str, job: str) -> Path:
        """``benchmarks/<rule>/<job>.tsv`` (``job`` may hold Snakemake wildcards, e.g.
        ``{aoi}/{month}``; ``dataset`` for a rule with one job per dataset)."""
        return self.job_benchmarks_dir() / rule / f"{job}.tsv"

    # ---- per AOI, HR side
    def aoi_dir(self, aoi: str) -> Path:
        return self.root / "aois" / aoi

    def patches(self, aoi: str) -> Path:
        return self.aoi_dir(aoi) / "patches.parquet"

    def hr_dir(self, aoi: str, date: str) -> Path:
        return self.aoi_dir(aoi) / "hr" / date

    def grid(self, aoi: str) -> Path:
        return self.aoi_dir(aoi) / "grid.json"

    def footprints(self, aoi: str) -> Path:
        return self.aoi_dir(aoi) / "footprints.parquet"

    def footprints_gpkg(self, aoi: str) -> Path:
        return self.aoi_dir(aoi) / "footprints.gpkg"

    def footprints_shp_dir(self, aoi: str) -> Path:
        """Folder of ``<aoi>_footprints.shp`` (only with footprints.export_shapefile)."""
        return self.aoi_dir(aoi) / "footprints_shp"

    def labels_dir(self, aoi: str, date: str) -> Path:
        return self.aoi_dir(aoi) / "labels" / date

    def labels_index(self, aoi: str) -> Path:
        return self.aoi_dir(aoi) / "labels.parquet"

    def change_dir(self, aoi: str, kind: str) -> Path:
        return self.aoi_dir(aoi) / "change" / kind

    def change_index(self, aoi: str) -> Path:
        return self.aoi_dir(aoi) / "change.parquet"

    def labels_state(self, aoi: str) -> Path:
        """Input fingerprint of the label tifs on disk (resume / stale-output detection)."""
        return self.aoi_dir(aoi) / "labels" / "_inputs.json"

    def change_state(self, aoi: str) -> Path:
        """Input fingerprint of the change tifs on disk (resume / stale-output detection)."""
        return self.aoi_dir(aoi) / "change" / "_inputs.json"

    # ---- Sentinel
    def mosaic(self, aoi: str) -> Path:
        return self.root / "sentinel" / f"{aoi}.zarr"

    def month_summary(self, aoi: str, month: str) -> Path:
        return self.root / "sentinel" / aoi / "months" / f"{month}.json"

    def ledger_dir(self, aoi: str, month: str) -> Path:
        return self.root / "sentinel" / aoi / "ledger" / month

    def sentinel_summary(self, aoi: str) -> Path:
        return self.root / "sentinel" / aoi / "summary.json"

    def manifest(self, aoi: str, stage: str) -> Path:
        """Files a per-AOI stage (``tile``, ``labels``, ``change``, ``sentinel``) wrote besides
        its declared output (:mod:`pipeline.io.manifest`)."""
        return self.aoi_dir(aoi) / "manifests" / f"{stage}.json"

    def covered_outputs(self, aoi: str) -> dict[str, tuple[Path, Path]]:
        """``{stage: (manifest, declared output)}`` of an AOI's per-AOI stages."""
        return {
            "tile": (self.manifest(aoi, "tile"), self.patches(aoi)),
            "labels": (self.manifest(aoi, "labels"), self.labels_index(aoi)),
            "change": (self.manifest(aoi, "change"), self.change_index(aoi)),
            "sentinel": (self.manifest(aoi, "sentinel"), self.sentinel_summary(aoi)),
        }

    def dataset_covered_outputs(self) -> dict[str, tuple[Path, Path]]:
        """``{stage: (manifest, declared output)}`` of the dataset-level stages: ``assemble``
        covers the split files it does not declare (per city, change detection) besides
        ``patches.parquet``."""
        return {"assemble": (self.root / "manifests" / "assemble.json", self.index())}

    def declared_split_files(self) -> list[Path]:
        """The split files rule ``assemble`` declares (Snakemake's outputs and default
        targets; Snakemake may touch them, so no manifest covers them)."""
        return [self.split_list(n) for n in ("train", "val", "test")] + [
            self.leakage_report(), self.split_summary()]

    # ---- dataset level
    def index(self) -> Path:
        return self.root / "patches.parquet"

    def splits_dir(self) -> Path:
        return self.root / "splits"

    def split_list(self, name: str) -> Path:
        """A split list: ``train`` -> splits/train.txt, ``cd_val`` ->
        splits/change_detection/val.txt, ``<city>/test`` -> splits/cities/<city>/test.txt."""
        d = self.splits_dir()
        if name.startswith("cd_"):
            return d / "change_detection" / f"{name[3:]}.txt"
        if "/" in name:
            city, s = name.split("/", 1)
            return d / "cities" / city / f"{s}.txt"
        return d / f"{name}.txt"

    def leakage_report(self) -> Path:
        return self.splits_dir() / "leakage.json"

    def split_summary(self) -> Path:
        return self.splits_dir() / "summary.json"

    def export_manifest(self) -> Path:
        """The FUSU export's manifest (outside the export folder, so Snakemake never deletes
        the folder itself before the overwrite check)."""
        return self.export_dir().parent / "fusu_manifest.json"

    def stats(self) -> Path:
        return self.root / "stats.json"

    def stac_dir(self) -> Path:
        return self.root / "stac"

    def report_dir(self) -> Path:
        return self.root / "report"

    def export_dir(self) -> Path:
        return self.root / "export" / "fusu"

    def train_dir(self, run: str = "default") -> Path:
        """Outputs of one training run (``train.run``)."""
        return self.root / "train" / run

    # ---- Sentinel (appended by the sentinel stages)
    def mosaic_marker(self, aoi: str) -> Path:
        """sentinel_init's output: store shape/chunking + planned-block count (JSON)."""
        return self.root / "sentinel" / aoi / "mosaic.json"

    def sentinel_blocks(self, aoi: str) -> Path:
        """The AOI's block plan (JSON list of blocks), shared by every month job."""
        return self.root / "sentinel" / aoi / "blocks.json"

    # ---- expansion of another change dataset (expand.adapter); the native layout again,
    # rooted at <root>/expand: expand_layout().footprints(group), .mosaic(group), ...
    def expand_dir(self) -> Path:
        return self.root / "expand"

    def expand_layout(self) -> Layout:
        """Native layout of the expansion outputs (AOI = sample group), under ``expand/``."""
        return Layout(self.expand_dir())

    def expand_samples(self) -> Path:
        """Sample index of the expanded dataset (GeoParquet, WGS84)."""
        return self.expand_dir() / "samples.parquet"

    def expand_plan(self) -> Path:
        """Request plan (groups, months, blocks, requests, pixels, cost proxy)."""
        return self.expand_dir() / "plan.json"

    def expand_mosaic_ready(self, group: str) -> Path:
        """Marker written once the group's mosaic store exists (job output)."""
        return self.expand_dir() / "sentinel" / group / "init.json"

    def expand_summary(self) -> Path:
        return self.expand_dir() / "summary.json"

    def expand_originals_dir(self) -> Path:
        return self.expand_dir() / "originals"

    # ---- Sentinel staging (appended: read-optimised cube consolidation)
    def mosaic_staging(self, aoi: str) -> Path:
        """Write-optimised mosaic the per-month jobs fill (chunks of one month); the
        ``sentinel`` rule consolidates it into the read-optimised :meth:`mosaic` cube."""
        return self.root / "sentinel" / aoi / "staging.zarr"


def demo_inputs_dir(results_dir: str | Path) -> Path:
    """Where the synthetic demo AOI's generated inputs live (referenced by aoi/demo.yaml)."""
    return Path(results_dir) / "demo-inputs"
