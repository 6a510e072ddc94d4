"""Metrics' harness, classical anchors and the paper's baselines (benchmarks and `eval`)."""
