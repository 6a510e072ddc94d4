"""Blocks every layer shares: entropy coding, wavelet transforms, the spectral stage's coding."""
