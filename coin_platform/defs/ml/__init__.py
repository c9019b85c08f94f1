"""The model domain: training_dataset, signal_model, model_evaluation (promotion and drift checks), daily_report."""

from coin_platform.defs.ml.assets import build_defs

__all__ = ["build_defs"]
