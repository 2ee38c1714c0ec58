# Rules for the labels part of the pipeline: class labels per patch, then change masks.
# One job per AOI (never per patch). The label / change GeoTIFF folders are written alongside;
# the index parquet is the declared output and is written last.

# AOI fields the labels stage reads (kept narrow so unrelated AOI edits do not rerun it).
_LABEL_AOI_KEYS = (
    "name", "city", "t1", "t2", "images", "annotations", "class_attribute", "class_mapping",
    "template", "generated",
)


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


rule labels:
    input:
        patches=L.patches("{aoi}"),
        annotations=_annotation_inputs,
    output:
        L.labels_index("{aoi}"),
    params:
        cfg=CFG.section("labels"),
        aoi=_label_aoi_params,
        root=ROOT,
    log:
        f"{ROOT}/logs/labels/{{aoi}}.log",
    script:
        "../../stages/labels.py"


rule change:
    input:
        L.labels_index("{aoi}"),
    output:
        L.change_index("{aoi}"),
    params:
        cfg=CFG.section("change"),
        root=ROOT,
    log:
        f"{ROOT}/logs/change/{{aoi}}.log",
    script:
        "../../stages/change.py"


ALL_TARGETS.extend(
    L.change_index(name) for name, spec in AOIS.items() if not spec.template
)
