"""GlitchNet: classify LIGO/Virgo detector glitches from Gravity Spy Omega-scan spectrograms."""

__version__ = "0.1.0"
