"""The `hsicodec` command line."""

from hsicodec.cli.main import main

__all__ = ["main"]
