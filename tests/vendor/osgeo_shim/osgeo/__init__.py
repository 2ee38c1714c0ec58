"""A stand-in for GDAL's Python bindings (``osgeo``), which the official FUSU dataset class
imports for one call (``gdal.Open(path, gdal.GA_ReadOnly).ReadAsArray()``). The project reads
rasters with rasterio (which bundles GDAL without the ``osgeo`` bindings); this shim gives the
official code the same array through rasterio. Test-only."""
