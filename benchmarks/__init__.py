"""Benchmarks: scripts that print a table and write JSON; figures are ratios measured side by side."""
