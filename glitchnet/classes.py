"""The 22 Gravity Spy glitch classes: names, field-guide text, physical origin and typical band."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GlitchClass:
    """One Gravity Spy class as a volunteer's field guide describes it."""

    name: str
    looks_like: str
    origin: str
    band_hz: tuple[float, float]
    """Frequency band where the class's energy usually sits, Hz."""
    pinned_frequency: bool
    """True when the class is tied to a fixed frequency (a line, a resonance)."""
    time_symmetric: bool
    """True when the morphology has no preferred direction in time."""


CLASS_INFO: tuple[GlitchClass, ...] = (
    GlitchClass("1080Lines", "faint dashes near 1080 Hz", "Hanford, O1; narrow-band disturbance",
                (1000.0, 1150.0), True, True),
    GlitchClass("1400Ripples", "short ripples near 1400 Hz", "Livingston, O1; origin unknown",
                (1300.0, 1500.0), True, True),
    GlitchClass("Air_Compressor", "blob or short line near 50 Hz", "air compressor vibration coupling",
                (40.0, 60.0), True, True),
    GlitchClass("Blip", "short (~10 ms) symmetric teardrop, ~30-500 Hz", "unknown; the most common class",
                (30.0, 500.0), False, True),
    GlitchClass("Chirp", "track rising in frequency with time", "compact-binary-like; mostly hardware injections",
                (30.0, 500.0), False, False),
    GlitchClass("Extremely_Loud", "huge broadband energy, saturated", "large disturbances, saturations",
                (10.0, 2048.0), False, True),
    GlitchClass("Helix", "repeating spots / helix-like pattern", "origin unclear",
                (30.0, 1000.0), False, False),
    GlitchClass("Koi_Fish", "loud blip with a fat body and low-frequency fins", "like Blip but louder",
                (20.0, 1000.0), False, True),
    GlitchClass("Light_Modulation", "repeated broadband spikes", "light modulation, photodiode issues",
                (10.0, 1000.0), False, False),
    GlitchClass("Low_Frequency_Burst", "hump of energy below ~50 Hz, ~1 s", "ground motion, scattering",
                (10.0, 50.0), False, True),
    GlitchClass("Low_Frequency_Lines", "horizontal lines at low frequency across the view", "low-frequency lines",
                (10.0, 60.0), True, True),
    GlitchClass("No_Glitch", "background noise only", "none: the detector's own noise",
                (10.0, 2048.0), False, True),
    GlitchClass("None_of_the_Above", "anything else", "various",
                (10.0, 2048.0), False, False),
    GlitchClass("Paired_Doves", "pairs of mirrored chirp-like tracks, tens to ~200 Hz",
                "Hanford O2, beam-splitter motion", (20.0, 200.0), False, False),
    GlitchClass("Power_Line", "short line at 60 Hz (or harmonics)", "US mains",
                (55.0, 65.0), True, True),
    GlitchClass("Repeating_Blips", "blips at regular intervals (~0.25-0.5 s)", "unknown",
                (30.0, 500.0), False, True),
    GlitchClass("Scattered_Light", "stacked arches below ~100 Hz", "light scattered off moving surfaces",
                (10.0, 100.0), False, True),
    GlitchClass("Scratchy", "wiggly mid-frequency band over ~1 s", "unknown",
                (30.0, 300.0), False, True),
    GlitchClass("Tomte", "short triangular blip, lower frequency than Blip", "unknown",
                (15.0, 150.0), False, True),
    GlitchClass("Violin_Mode", "short features at ~500 Hz (and harmonics)", "suspension fibre resonances",
                (480.0, 520.0), True, True),
    GlitchClass("Wandering_Line", "line whose frequency wanders, high frequency", "unknown",
                (500.0, 2048.0), False, False),
    GlitchClass("Whistle", "V- or W-shaped high-frequency tracks", "radio-frequency beat notes",
                (200.0, 2048.0), False, False),
)

CLASSES: tuple[str, ...] = tuple(c.name for c in CLASS_INFO)
"""Class names in the canonical (alphabetical, Kaggle folder) order; index = label id."""

NUM_CLASSES = len(CLASSES)
CLASS_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
INFO_BY_NAME: dict[str, GlitchClass] = {c.name: c for c in CLASS_INFO}

DURATIONS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
"""The four Gravity Spy views, window length in seconds."""


def class_index(name: str) -> int:
    """Return the label id of a class name, with a clear error for an unknown one."""
    try:
        return CLASS_TO_INDEX[name]
    except KeyError:
        raise ValueError(f"unknown Gravity Spy class {name!r}; expected one of {', '.join(CLASSES)}") from None
