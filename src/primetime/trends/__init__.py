"""Demand over time: seasonal-trend decomposition of the catalog's weekly demand
(``primetime trends``), release-week forecasts (``primetime release-plan``) and the
planted-season study of time-aware models (``primetime season``).

- :mod:`~primetime.trends.demand`: demand series per title, genre and catalog, STL.
- :mod:`~primetime.trends.release`: a title's audience forecast from its profile, the
  best release week, and on synthetic worlds the planted true demand it is scored against.
- :mod:`~primetime.trends.season`: the season split and the temporal-vs-sasrec study.

Sits beside the life cycle (it fits models through :mod:`primetime.lifecycle`); the
command line is its only caller.
"""
