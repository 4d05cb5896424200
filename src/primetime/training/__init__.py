"""One training loop for every neural model (see :mod:`primetime.training.loop`),
its learning-rate schedules, and tabular training examples (``rows``)."""

from primetime.training.loop import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
