"""The classic services, each runnable as ``python -m pyparallel.examples.NAME``."""
