"""Gravity Spy Omega-scan simulator: glitch strain models and noise, scanned by :mod:`glitchnet.omega`, and datasets
in the Kaggle layout."""

from .dataset import (
    DEFAULT_VERSION,
    class_counts,
    data_home,
    default_dataset,
    glitch_metadata,
    simulate_dataset,
    simulate_glitch,
    simulate_strain,
)
from .morphologies import MODEL_BY_LABEL, MODELS, GlitchModel

__all__ = [
    "DEFAULT_VERSION", "MODELS", "MODEL_BY_LABEL", "GlitchModel", "class_counts", "data_home", "default_dataset",
    "glitch_metadata", "simulate_dataset", "simulate_glitch", "simulate_strain",
]
