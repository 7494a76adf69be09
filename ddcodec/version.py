"""The package version, in a module of its own: modules that record it import nothing else of
the package through it."""

__version__ = "0.1.0"
