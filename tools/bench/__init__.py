"""Benchmarks: the figures the docs quote, one script each (``make bench``); not tests, and they assert nothing."""
