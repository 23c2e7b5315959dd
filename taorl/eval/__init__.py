"""Benchmark evaluation: the runner (`evaluate`), the maths (`metrics`), the `taorl eval` command."""
