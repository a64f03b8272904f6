"""Names and text fit to show or hand to a visitor: Markdown that shows a file name literally, CSV cells a spreadsheet
shows as text, paths without the server's folders. Used by every layer that words a message (images, strain, the
queue, the pages), so it imports nothing of GlitchNet.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

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
