# Helper functions shared by the rule files (input / params functions). Included by the
# Snakefile after the globals CFG, AOIS, L and ROOT are defined and before the other rule
# files, which then hold no function definitions (snakemake --lint). Functions only, so
# keep any workflow steps out of this file.

from snakemake.exceptions import WorkflowError

# AOI fields the tile stage reads (kept narrow so e.g. annotation edits do not re-tile).
_TILE_AOI_KEYS = ("name", "city", "t1", "t2", "images", "template")

# AOI fields the labels stage reads (kept narrow so unrelated AOI edits do not rerun it).
_LABEL_AOI_KEYS = (
    "name", "city", "t1", "t2", "images", "annotations", "class_attribute", "class_mapping",
    "annotation_layer", "template", "generated",
)


def dataset_root(wildcards, output):
    """`params: root=dataset_root`: the dataset root (<results_dir>/<dataset>) of this job.

    Derived from the job's first output (all users of this function write under the root),
    so it stays right when a storage plugin remaps paths (e.g. under .snakemake/storage/).
    In plain local runs it is exactly ROOT.
    """
    out = Path(str(output[0]))
    root = Path(ROOT)
    if out.is_relative_to(root):
        return ROOT
    # remapped: find the root's components (without any anchor) inside the output path
    rparts = root.parts[1:] if root.is_absolute() else root.parts
    n = len(rparts)
    for i in range(len(out.parts) - n if n else 0):
        if out.parts[i : i + n] == rparts:
            return str(Path(*out.parts[: i + n]))
    raise WorkflowError(
        f"output {out} does not lie under the dataset root {ROOT}: pass params "
        "root=dataset_root only where the first output is inside the dataset root"
    )


def _aoi_file(wildcards):
    """`params: aoi_file=_aoi_file`: the AOI definition file the stage loads its AOI from."""
    return AOI_FILES[wildcards.aoi]


# --- hr.smk -------------------------------------------------------------------------------


def _hr_spec(wildcards):
    try:
        spec = AOIS[wildcards.aoi]
    except KeyError:
        raise ValueError(
            f"AOI {wildcards.aoi!r} is not in the configured 'aois' list "
            f"(known: {sorted(AOIS)}): add its definition file to 'aois'"
        ) from None
    if spec.template or spec.images is None:
        raise ValueError(
            f"AOI {spec.name!r} is a template and cannot be built: fill in 'images' and "
            "'annotations' with your own data in its AOI file and set 'template: false'"
        )
    return spec


def _hr_images(wildcards):
    spec = _hr_spec(wildcards)
    return [spec.images.t1, spec.images.t2]


def _tile_aoi_params(wildcards):
    return _hr_spec(wildcards).model_dump(mode="json", include=set(_TILE_AOI_KEYS))


# --- labels.smk ---------------------------------------------------------------------------


def _label_aoi_params(wildcards):
    return AOIS[wildcards.aoi].model_dump(mode="json", include=set(_LABEL_AOI_KEYS))


def _annotation_inputs(wildcards):
    a = AOIS[wildcards.aoi]
    if a.annotations is None:
        return []  # template: the stage fails with a message saying what to provide
    files = [a.annotations.t1, a.annotations.t2]
    if a.class_mapping:
        files.append(a.class_mapping)
    return files


# --- sentinel.smk -------------------------------------------------------------------------


def _demo_scenes_done(name):
    return f"{AOIS[name].sentinel_archive}/done.json"


def _sentinel_archive_input(wildcards):
    spec = AOIS[wildcards.aoi]
    if CFG.sentinel.source in ("local", "stac") and spec.generated and spec.sentinel_archive:
        return [_demo_scenes_done(wildcards.aoi)]
    return []


# --- report.smk ---------------------------------------------------------------------------


def _report_month_summaries(wildcards):
    return [
        L.month_summary(name, month)
        for name, spec in AOIS.items()
        if not spec.template
        for month in spec.months
    ]


# --- expand.smk ---------------------------------------------------------------------------


def _expand_month_summaries(wildcards):
    import json

    plan = json.loads(Path(checkpoints.expand_index.get().output.plan).read_text())
    xl = L.expand_layout()
    return [str(xl.month_summary(g["group"], m)) for g in plan["groups"] for m in g["months"]]
