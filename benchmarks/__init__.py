"""The saga benchmark behind `make bench`: `python -m benchmarks.saga --help`."""
