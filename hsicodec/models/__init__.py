"""Base models bundled with the package (found by the registry; see hsicodec.models.registry)."""
