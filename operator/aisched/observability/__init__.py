"""Metrics and logging setup: the process's view of itself.

May import prometheus-client and structlog. Metrics are defined in one module with bounded label
sets; logging is configured once, at process start.
"""
