"""Raster I/O (GeoTIFF, ENVI, .npy, .mat) and atomic output files."""
