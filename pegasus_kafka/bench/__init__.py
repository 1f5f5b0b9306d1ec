"""Benchmarks: measured in one run against a baseline, reported as ratios."""
