"""Benchmarks (`aisched bench ...`, `make bench`): synthetic clusters and timed runs of the core.

Prints JSON and a readable table. Never imported by the scheduler itself.
"""
