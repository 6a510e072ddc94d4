"""`python -m hsicodec.cli`: the `hsicodec` command."""

from hsicodec.cli.main import main

main()
