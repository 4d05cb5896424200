"""One training loop for every neural model (see :mod:`primetime.training.loop`)."""

from primetime.training.loop import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]
