# Rules for the HR part of the pipeline: tile the T1/T2 pair, then footprints on the AOI grid.
# One job per AOI (never per patch). Patch GeoTIFF folders (aois/<aoi>/hr/{t1,t2}) are written
# alongside; the index parquet is the declared output and is written last.

# AOI fields the tile stage reads (kept narrow so e.g. annotation edits do not re-tile).
_TILE_AOI_KEYS = ("name", "city", "t1", "t2", "images", "template")


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


rule tile:
    input:
        _hr_images,
    output:
        L.patches("{aoi}"),
    params:
        cfg=CFG.section("tile"),
        aoi=_tile_aoi_params,
        root=ROOT,
    log:
        f"{ROOT}/logs/tile/{{aoi}}.log",
    resources:
        # strip-wise reads: bounded by 64 patches x 2 dates + a 64 MiB GDAL cache, not the AOI
        mem_mb=1500,
    script:
        "../../stages/tile.py"


rule footprints:
    input:
        L.patches("{aoi}"),
    output:
        footprints=L.footprints("{aoi}"),
        grid=L.grid("{aoi}"),
        gpkg=L.footprints_gpkg("{aoi}"),
    params:
        cfg=CFG.section("footprints"),
        root=ROOT,
    log:
        f"{ROOT}/logs/footprints/{{aoi}}.log",
    script:
        "../../stages/footprints.py"


ALL_TARGETS.extend(
    path
    for name, spec in AOIS.items()
    if not spec.template
    for path in (L.footprints(name), L.grid(name), L.footprints_gpkg(name))
)
