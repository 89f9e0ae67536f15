"""Test support: the mock harness, processes, the conformance gate, the server venv and the cluster fixtures, shared by the tests, the benchmarks and the developer tools."""
