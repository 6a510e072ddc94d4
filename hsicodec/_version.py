"""The package version (one place: the package, the CLI and files' created_by read it)."""

__version__ = "0.1.0"
