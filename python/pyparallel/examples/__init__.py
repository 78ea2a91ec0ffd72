"""The classic services, each runnable as ``python -m pyparallel.examples.NAME``."""

# Each example is a module of its own; the package itself exports nothing.
__all__: list[str] = []
