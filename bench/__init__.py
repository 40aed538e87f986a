"""Benchmarks for Alphabet Events (`python -m bench [--quick] [--out FILE]`).

Not tests: they print figures and their ratios to baselines measured in the same run on the
same machine (a bare Sanic route, raw SQLite inserts), so a figure means something on any host.
"""
