"""Every option exists on both sides, the command line and the Python API, with the same name and meaning."""

from __future__ import annotations

import inspect

import click

from hsicodec.cli.compress import compress as compress_cmd
from hsicodec.cli.compress import decompress as decompress_cmd
from hsicodec.codec import api

#: API parameters a command line cannot take (objects, callbacks, results) or that serve ablations only
API_ONLY = {"cube", "src", "dst", "source", "geo", "progress", "tile_progress", "stats", "registry", "created_by",
            "latent_codings", "kwargs", "shared_spectral"}  # fmt: skip
#: command-line options about the command's own output
CLI_ONLY = {"quiet", "as_json"}
CLI_NAMES = {"fmt": "format"}  # click parameter names that differ from the option's word


def _api(*funcs) -> set:
    return {p for f in funcs for p in inspect.signature(f).parameters} - API_ONLY


def _cli(cmd: click.Command) -> set:
    return {CLI_NAMES.get(p.name, p.name) for p in cmd.params if p.name} - CLI_ONLY - {"src", "dst"}


def test_compress_options_match_the_api():
    assert _cli(compress_cmd) == _api(api.compress, api.compress_file)


def test_decompress_options_match_the_api():
    assert _cli(decompress_cmd) == _api(api.decompress_file)
