"""Shared core of the footfall system: the wire contract, configuration loading and versions."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("footfall")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
