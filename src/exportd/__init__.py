"""exportd: race-free segmentation exports as background jobs with ordered events."""

__version__ = "0.1.0"
