"""The `.hsim` container: bytes ⇄ header + sections, limits, compact tables (spec/hsim.md)."""
