"""Test support: the mock harness, processes, the conformance gate, the server venv and the cluster fixtures.

Shared by the tests, the benchmarks and the developer tools.
"""
