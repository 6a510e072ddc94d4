"""Small sample data shipped with the package (for the demo and tests)."""

from pathlib import Path

SAMPLE = "jasper_ridge_crop64.npy"


def sample_path() -> Path:
    """Path of the bundled 64×64×198 uint16 crop of Jasper Ridge (AVIRIS)."""
    return Path(__file__).parent / SAMPLE
