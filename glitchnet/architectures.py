"""The network architectures a checkpoint can name, without importing torch (the CLI's start-up stays instant)."""

ARCHITECTURE_NAMES: tuple[str, ...] = ("glitchnet", "glitchnet-freq")
"""``--arch`` choices: the seed's exact GlitchNet (the default) and the frequency-aware variant (``model.py``)."""

DEFAULT_ARCH = "glitchnet"
