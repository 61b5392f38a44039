"""Benchmarks: scripts that measure the hot paths and print a table and one JSON line."""
