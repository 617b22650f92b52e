"""The benchmark harness: `python -m tests.bench` (README "Benchmark")."""
