"""The network layer: latent grids for the shared, meta-learned modulated SIREN."""
