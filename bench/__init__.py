"""The benchmark: controlled search against free-running stress on every target with a
known bug, measured side by side in one run (``make bench``; ``BENCH_QUICK=1`` for a
run under a minute). Writes reports/bench.json and reports/bench.md."""
