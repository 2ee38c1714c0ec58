"""Expansion paradigm: monthly Sentinel-1/2 series around the samples of other change datasets.

* :mod:`pipeline.expand.adapters` -- dataset-agnostic sample records -> the sample index
  (id, geometry, CRS, dates, paths to the original files); dates, ids and label encodings.
* :mod:`pipeline.expand.grouping` -- samples -> AOI groups (UTM zone + single-linkage
  proximity) and footprints on each group's 10 m grid (any GSD; 5x rule or size overrides).
* :mod:`pipeline.expand.plan` -- per-sample months, per (group, month) blocks, and the request
  plan with an Earth Engine cost proxy and naive per-footprint numbers.

Reading the foreign layouts lives in :mod:`pipeline.expand.datasets` (one module per dataset:
OSCD, SpaceNet 7, DynamicEarthNet, xBD, pair folders, index files); an expanded sample's cube
is read back by :mod:`pipeline.expand.cube`.
"""
