"""Where the shipped model lives, without importing torch: the app names it before the model is loaded."""

from __future__ import annotations

import os
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
DEFAULT_MODEL = MODELS_DIR / "glitchnet.pt"


def default_model_path() -> Path:
    """``$GLITCHNET_MODEL`` if set, else the shipped ``models/glitchnet.pt``."""
    env = os.environ.get("GLITCHNET_MODEL")
    return Path(env) if env else DEFAULT_MODEL
