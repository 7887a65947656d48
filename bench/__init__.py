"""bench: declarative benchmarks of neural-network optimizers."""
__version__ = "0.1.0"
