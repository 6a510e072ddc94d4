"""zarr / numcodecs, xarray and Dask batch integrations."""
