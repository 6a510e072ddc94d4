"""The codec: spectral stage, rate control over the layers, best of the layers per file, tiling."""
