"""The measurement scripts behind docs/BENCHMARKS.md. Run each from the repository root as
`python -m benchmarks.NAME`; `python -m benchmarks.all` runs every step of the report."""
