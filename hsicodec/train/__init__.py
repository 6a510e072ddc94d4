"""Meta-training of base models (needs torch)."""
