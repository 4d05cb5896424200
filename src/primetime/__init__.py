"""Primetime: movie and TV-show recommendation."""

__version__ = "0.1.0"
