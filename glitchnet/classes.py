"""Gravity Spy class sets as data: each set's ordered classes with field-guide text, origin and typical band.

Two sets ship: ``gravityspy-o1o2``, the 22 classes of the O1/O2 training set (Zevin et al. 2017; the default, the
seed's), and ``gravityspy-o3``, the 23 classes of Gravity Spy's O3 model (Glanzer et al. 2023, CQG 40 065004): the
22 without None_of_the_Above, plus Blip_Low_Frequency and Fast_Scattering. A researcher's own taxonomy is a third
kind, made from a dataset's class folders (``folder_class_set``). A checkpoint carries its set; everything that
names classes (training, evaluation, prediction, the app's field guide and quiz) reads the loaded model's set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
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


_O1O2_INFO: tuple[GlitchClass, ...] = (
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

_O3_ONLY_INFO: tuple[GlitchClass, ...] = (
    GlitchClass("Blip_Low_Frequency", "blip whose energy stays below ~100 Hz",
                "unknown; common at Livingston in O3", (15.0, 100.0), False, True),
    GlitchClass("Fast_Scattering", "short arches at 10-60 Hz repeating every 0.2-0.5 s (\"Crown\")",
                "light scattered off surfaces moving with ground motion in the anthropogenic band (1-6 Hz)",
                (10.0, 60.0), False, True),
)


@dataclass(frozen=True)
class ClassSet:
    """A taxonomy: an ordered tuple of classes (index = the model's label id) with a name and a title."""

    name: str
    title: str
    """A few words for people choosing a model: "Gravity Spy O1/O2, 22 classes"."""
    info: tuple[GlitchClass, ...]
    reference: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.info)

    def __len__(self) -> int:
        return len(self.info)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def index(self, name: str) -> int:
        """The label id of ``name``, with a one-line error for a class outside the set."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown class {str(name)[:40]!r} for {self.name}; expected one of "
                             f"{', '.join(self.names)}") from None

    def class_info(self, name: str) -> GlitchClass | None:
        return next((c for c in self.info if c.name == name), None)

    @property
    def known(self) -> bool:
        """True for a set that ships with GlitchNet (not one made from a dataset's folders)."""
        return self.name in CLASS_SETS


GRAVITYSPY_O1O2 = ClassSet("gravityspy-o1o2", "Gravity Spy O1/O2, 22 classes", _O1O2_INFO,
                           "Zevin et al. 2017; Bahaadini et al. 2018 (training set v1d1)")
GRAVITYSPY_O3 = ClassSet("gravityspy-o3", "Gravity Spy O3, 23 classes",
                         tuple(sorted([c for c in _O1O2_INFO if c.name != "None_of_the_Above"] + list(_O3_ONLY_INFO),
                                      key=lambda c: c.name)),
                         "Glanzer et al. 2023, CQG 40 065004 (Zenodo 5649212)")

CLASS_SETS: dict[str, ClassSet] = {s.name: s for s in (GRAVITYSPY_O1O2, GRAVITYSPY_O3)}
"""The class sets that ship, by name."""

DEFAULT_CLASS_SET = GRAVITYSPY_O1O2.name
AUTO = "auto"
FOLDERS = "folders"
CLASS_SET_CHOICES: tuple[str, ...] = (AUTO, *CLASS_SETS, FOLDERS)
"""``--classes`` choices: a shipped set, ``auto`` (the shipped set that covers the dataset's class folders, else the
folders themselves) or ``folders`` (the dataset's own class folders, a researcher's taxonomy)."""

ALIASES: dict[str, str] = {"Crown": "Fast_Scattering", "LowFreqBlip": "Blip_Low_Frequency",
                           "LOWFREQUENCYBLIP": "Blip_Low_Frequency", "CROWN": "Fast_Scattering"}
"""Volunteer-workflow names of O3 classes -> the model's class names."""

ALL_INFO: dict[str, GlitchClass] = {c.name: c for s in CLASS_SETS.values() for c in s.info}
"""Every shipped class by name, whichever set it belongs to (augmentation policies and the simulator cover these)."""

MAX_CLASSES = 64
"""The most classes a set (a dataset's folders, a checkpoint's list) may name."""
CLASS_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,47}$")
"""What a class name may be: a folder-name-like word (no spaces, markup or path separators), at most 48 characters."""

# The default set, under the names the seed's code used: most of the library works with a given set, and these are
# the seed's 22 where no set is given.
CLASS_INFO: tuple[GlitchClass, ...] = GRAVITYSPY_O1O2.info
CLASSES: tuple[str, ...] = GRAVITYSPY_O1O2.names
"""The default set's class names in the canonical (alphabetical, Kaggle folder) order; index = label id."""
NUM_CLASSES = len(CLASSES)
CLASS_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
INFO_BY_NAME: dict[str, GlitchClass] = {c.name: c for c in CLASS_INFO}

DURATIONS_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
"""The four Gravity Spy views, window length in seconds."""


def class_index(name: str) -> int:
    """Return the default set's label id of a class name, with a clear error for an unknown one."""
    try:
        return CLASS_TO_INDEX[name]
    except KeyError:
        raise ValueError(f"unknown Gravity Spy class {name!r}; expected one of {', '.join(CLASSES)}") from None


def get_class_set(name: str) -> ClassSet:
    """A shipped class set by name, with a one-line error naming the choices."""
    try:
        return CLASS_SETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown class set {str(name)[:40]!r}; expected one of {', '.join(CLASS_SETS)}") from None


def check_class_names(names: Sequence[str]) -> list[str]:
    """``names`` as a list if they can name a model's classes (2 to ``MAX_CLASSES`` distinct ``CLASS_NAME_RE``
    words), else ``ValueError`` saying what is wrong in one line."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(c, str) for c in names):
        raise ValueError("the class list is not a list of class names")
    if not 2 <= len(names) <= MAX_CLASSES:
        raise ValueError(f"it names {len(names)} classes (a GlitchNet has 2 to {MAX_CLASSES})")
    bad = [c for c in names if not CLASS_NAME_RE.match(c)]
    if bad:
        raise ValueError(f"class name {bad[0][:40]!r} is not a plain word (letters, digits, _ or -)")
    if len(set(names)) != len(names):
        raise ValueError("a class is named twice")
    return list(names)


def folder_class_set(names: Iterable[str]) -> ClassSet:
    """A researcher's own taxonomy: the given class names (sorted, as class folders list), with neutral text."""
    names = check_class_names(sorted(set(names)))
    info = tuple(ALL_INFO.get(n) or GlitchClass(n, "a class of this dataset", "defined by the dataset's labels",
                                                (10.0, 2048.0), False, False) for n in names)
    return ClassSet(f"folders:{len(names)}", f"the dataset's own {len(names)} classes", info)


def class_set_for(names: Sequence[str]) -> ClassSet:
    """The class set a model with these class names (in this order) belongs to: a shipped set when they match one
    exactly, else the names as a set of their own (an older or a researcher's checkpoint)."""
    names = list(names)
    for s in CLASS_SETS.values():
        if list(s.names) == names:
            return s
    info = tuple(ALL_INFO.get(n) or GlitchClass(n, "a class of this model", "defined by the model's training labels",
                                                (10.0, 2048.0), False, False) for n in check_class_names(names))
    return ClassSet(f"custom:{len(names)}", f"{len(names)} classes of its own", info)


def choose_class_set(folder_names: Iterable[str], choice: str | ClassSet = AUTO) -> tuple[ClassSet, str]:
    """The class set for a dataset whose class folders are ``folder_names``, and one line saying why.

    ``choice`` a shipped set's name, or any ``ClassSet`` (a model's): that set (folders outside it are named, and
    skipped by the scan). ``folders``:
    the folders themselves. ``auto``: the smallest shipped set that covers every folder; if none does, the shipped set
    that covers the most of them when it covers at least half (the rest named), else the folders themselves.
    """
    found = sorted({ALIASES.get(n, n) for n in folder_names})
    if choice == FOLDERS:
        s = folder_class_set(found)
        return s, f"classes: the dataset's own {len(s)} class folders"
    if choice != AUTO:
        s = choice if isinstance(choice, ClassSet) else get_class_set(choice)
        outside = [n for n in found if n not in s]
        return s, f"classes: {s.title} ({s.name})" + (_outside(outside, s) if outside else "")
    if len(found) < 2:  # one folder is no taxonomy: read it with the default set (and name it if outside)
        s = CLASS_SETS[DEFAULT_CLASS_SET]
        return s, "" if set(found) <= set(s.names) else f"classes: {s.title} ({s.name})" + _outside(found, s)
    covering = [s for s in CLASS_SETS.values() if set(found) <= set(s.names)]
    if covering:
        s = covering[0]
        return s, f"classes: {s.title} ({s.name}), which covers every class folder"
    best = max(CLASS_SETS.values(), key=lambda s: sum(n in s for n in found))
    inside = sum(n in best for n in found)
    if found and inside * 2 >= len(found) and inside >= 2:
        return best, f"classes: {best.title} ({best.name})" + _outside([n for n in found if n not in best], best)
    s = folder_class_set(found)
    return s, f"classes: the dataset's own {len(s)} class folders (no Gravity Spy class set covers them)"


def _outside(names: list[str], s: ClassSet) -> str:
    shown = ", ".join(n[:40] for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"; not classes of {s.name}, skipped: {shown} (--classes folders trains on every folder)"


def map_label(label: str, to: ClassSet) -> str | None:
    """The class of ``to`` that a label of another set (or a volunteer workflow's name) stands for, or None.

    Written once for every conversion: the O1/O2 and O3 sets share 21 names; None_of_the_Above has no O3 counterpart,
    and an O3 model's Fast_Scattering and Blip_Low_Frequency have no O1/O2 one (Gravity Spy's O1/O2 volunteers would
    have called them Scattered_Light, Blip or None_of_the_Above, so no single class is right)."""
    name = ALIASES.get(label, label)
    return name if name in to else None
