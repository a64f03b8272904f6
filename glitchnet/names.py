"""Names: what a Gravity Spy file name says (detector, glitch id, view; the glitch a file belongs to), and text fit to
show or hand to a visitor (Markdown that shows a file name literally, CSV cells a spreadsheet shows as text, paths
without the server's folders). Used by every layer that reads a file name or words a message (the dataset scan, the
real pool, images, strain, the queue, the pages), so it imports nothing of GlitchNet.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

NAME_RE = re.compile(r"^(?P<ifo>[A-Z]\d)_(?P<gid>[A-Za-z0-9]+(?:\.\d+)?)_spectrogram_(?P<dur>\d+(?:\.\d+)?)$")
"""``{ifo}_{id}_spectrogram_{duration}``: the id is Gravity Spy's, or a GPS time (``1238507926.062500000``) as
detector-characterisation tools name their Omega scans."""


def parse_name(name: str) -> tuple[str | None, str | None, float | None]:
    """(ifo, gravityspy_id, duration_s) from a Gravity Spy file name (or a path ending in one), or Nones."""
    m = NAME_RE.match(Path(name).stem)
    return (m["ifo"], m["gid"], float(m["dur"])) if m else (None, None, None)


def glitch_key(name: str) -> str:
    """The glitch a file belongs to: ``{ifo}_{gravityspy_id}`` for Gravity Spy names (wherever the file lies), else
    the name itself (a file of its own; give a path to keep same-named files in different folders apart). The one
    rule for "these files are one glitch": the dataset scan, the app's samples, the queue, bulk runs and similarity
    all read it."""
    ifo, gid, _ = parse_name(name)
    return f"{ifo}_{gid}" if gid else name


CSV_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")
"""Characters that make a spreadsheet read a cell as a formula (OWASP's list for CSV injection)."""


def csv_safe(value: Any) -> Any:
    """A cell value a spreadsheet shows as text: strings starting with a formula character get a leading ``'``."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_LEAD):
        return "'" + value
    return value


def csv_bytes(table: Any) -> bytes:
    """A pandas DataFrame as UTF-8 CSV with every text cell passed through :func:`csv_safe`."""
    import pandas as pd

    safe = table.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(csv_safe)
    return safe.to_csv(index=False).encode()


def plain(text: str) -> str:
    """``text`` for a Markdown string, shown literally: a CommonMark code span, so no link, image, emphasis, HTML or
    Streamlit directive in a file name is ever interpreted. Line breaks become spaces."""
    text = re.sub(r"[\r\n]+", " ", str(text))
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or (text.startswith(" ") and text.endswith(" ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def dataset_relative(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` relative to the dataset ``root`` (the root itself is "."); a path outside it shows its name only."""
    p, r = Path(path), Path(root)
    try:
        return p.relative_to(r).as_posix() or "."
    except ValueError:
        return p.name


def scrub_paths(text: str, roots: Iterable[str | os.PathLike]) -> str:
    """``text`` with every occurrence of the given folders (longest first) replaced by their last component."""
    for root in sorted({str(Path(r)) for r in roots if str(r) not in ("", ".", "/")}, key=len, reverse=True):
        text = text.replace(root + os.sep, "").replace(root, Path(root).name)
    return text
