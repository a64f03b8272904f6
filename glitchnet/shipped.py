"""Where the shipped models live, without importing torch: the app names them before a model is loaded."""

from __future__ import annotations

import os
from pathlib import Path

from .classes import CLASS_SETS, DEFAULT_CLASS_SET

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS_DIR / "glitchnet.pt"

SHIPPED_MODELS: dict[str, Path] = {
    "gravityspy-o1o2": DEFAULT_MODEL,
    "gravityspy-o3": MODELS_DIR / "glitchnet-o3.pt",
}
"""The shipped checkpoint of each class set: the seed's 22 O1/O2 classes (the default) and today's 23 O3 ones."""

assert set(SHIPPED_MODELS) <= set(CLASS_SETS) and DEFAULT_CLASS_SET in SHIPPED_MODELS


def shipped_title(class_set: str) -> str:
    """How the app names a shipped model: its class set's title ("Gravity Spy O3, 23 classes")."""
    return CLASS_SETS[class_set].title


def default_model_path() -> Path:
    """``$GLITCHNET_MODEL`` if set, else the shipped ``models/glitchnet.pt``."""
    env = os.environ.get("GLITCHNET_MODEL")
    return Path(env) if env else DEFAULT_MODEL


def shipped_model_path(class_set: str = DEFAULT_CLASS_SET) -> Path:
    """The shipped model of ``class_set`` (the default set's follows ``$GLITCHNET_MODEL``)."""
    if class_set not in SHIPPED_MODELS:
        raise ValueError(f"no shipped model for {class_set!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    return default_model_path() if class_set == DEFAULT_CLASS_SET else SHIPPED_MODELS[class_set]
