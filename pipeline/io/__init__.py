"""All file I/O of the pipeline, one module per format; the bottom layer: it imports nothing of
``pipeline`` but :mod:`pipeline.errors`, :mod:`pipeline.grid`, :mod:`pipeline.bands` and
:mod:`pipeline.layout` (a test keeps it so). Foreign dataset layouts live in
:mod:`pipeline.expand.datasets`, which discovers files and reads pixels through here.

==========================  ===========================================================
module                      format
==========================  ===========================================================
:mod:`.atomic`              the atomic-write mechanism every writer uses; text lists
:mod:`.jsonfile`            JSON documents (grid.json, blocks.json, summaries) and input
                            fingerprints
:mod:`.parquet`             (Geo)Parquet indices (per-AOI tables, ``patches.parquet``)
:mod:`.geotiff`             patch GeoTIFFs (one writer, one reader), demo scenes, FUSU
                            per-month Sentinel GeoTIFFs
:mod:`.raster`              source rasters (HR scenes, any GDAL format): validate, warp,
                            windowed reads
:mod:`.vector`              annotation polygons in, footprint polygons out
:mod:`.tables`              CSV tables (class mapping)
:mod:`.mosaic`              the Zarr Sentinel mosaics (staging store and cube)
:mod:`.scenes`              the local scene archive (GeoTIFF bands + scene.json)
:mod:`.files`               copies of original files and folders (expansion originals)
:mod:`.png`                 PNG images and figures
:mod:`.stac_catalog`        STAC catalogues (the dataset collection, scene catalogues, API
                            searches with retries, the catalogue-location rule)
:mod:`.digest`              every digest that decides reuse (ledger keys, fingerprints,
                            manifests)
==========================  ===========================================================

Atomic-write rule: every output is written to a temporary sibling and renamed into place, so
a crash never leaves a half-written file under the final name.
"""
