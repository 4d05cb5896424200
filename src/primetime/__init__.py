"""Primetime: movie and TV-show recommendation.

Layers, each importing only those before it:
``data`` (files, datasets, splits, side data) <- ``eval`` (the protocol; models are
anything with ``items`` and ``score``) <- ``models`` + ``training`` (never import
eval: validation is passed in through ``FitOptions``) <- ``registry`` and
``lifecycle`` (fit, select, refit, register: the one path to a trained model) <-
``pipeline`` (what a user is served) <- ``service`` (HTTP API, store, cache,
actions) <- ``web`` and ``cli``. ``types`` and ``ranking`` are shared leaves.
"""

__version__ = "0.1.0"
