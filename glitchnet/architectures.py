"""The network architectures a checkpoint can name, without importing torch (the CLI's start-up stays instant)."""

ARCHITECTURE_NAMES: tuple[str, ...] = ("glitchnet", "glitchnet-freq")
"""``--arch`` choices: the seed's exact GlitchNet (the default) and the frequency-aware variant (``model.py``)."""

DEFAULT_ARCH = "glitchnet"

MAX_WIDTH = 512
"""Widest network a checkpoint may declare (channels); the shipped model has 64. A header is checked against this
before anything is built, so a crafted ``width`` cannot make the loader allocate gigabytes."""
