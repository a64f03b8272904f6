"""Write docs/contact_sheet.png: each class's real Gravity Spy reference image beside a simulated one.

Run as ``python benchmarks/make_contact_sheet.py [--view 1.0] [--seed 0] [--out docs/contact_sheet.png]``.
The real images are Gravity Spy's golden subjects, read from ``../shared/data/real/golden`` at run time (a
``*-2.gif`` holds the 0.5, 1, 2 and 4 s views as frames); their plot areas are cropped with
``glitchnet.images.plot_area``. The simulated image is ``simulate_glitch(label, seed)`` at the same duration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from glitchnet.classes import CLASSES, DURATIONS_S  # noqa: E402
from glitchnet.images import plot_area  # noqa: E402
from glitchnet.simulate import simulate_glitch  # noqa: E402

GOLDEN = ROOT.parent / "shared" / "data" / "real" / "golden"
TILE = (160, 135)
LABEL_H = 14
GAP = 4
ROWS = 11


def golden_view(label: str, view_s: float) -> Image.Image:
    """The plot area of the class's first golden GIF at the frame of ``view_s``."""
    gifs = sorted((GOLDEN / label).glob("*-2.gif")) or sorted((GOLDEN / label).glob("*.gif"))
    if not gifs:
        raise SystemExit(f"no golden GIF for {label} under {GOLDEN}")
    return plot_area(str(gifs[0]), DURATIONS_S.index(view_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--view", type=float, default=1.0, choices=DURATIONS_S, help="view duration, s")
    parser.add_argument("--seed", type=int, default=0, help="seed of every simulated glitch")
    parser.add_argument("--out", default=str(ROOT / "docs" / "contact_sheet.png"))
    args = parser.parse_args()
    if not GOLDEN.is_dir():
        raise SystemExit(f"real golden images not found at {GOLDEN}")

    w, h = TILE
    pair_w = 2 * w + GAP
    cell_h = LABEL_H + h + GAP
    columns = (len(CLASSES) + ROWS - 1) // ROWS
    header = 2 * LABEL_H
    sheet = Image.new("RGB", (columns * pair_w + (columns - 1) * 4 * GAP, header + ROWS * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), f"left: real Gravity Spy golden image; right: simulated ({args.view:g} s view, seed "
                      f"{args.seed})", fill="black")
    for i, label in enumerate(CLASSES):
        x = (i // ROWS) * (pair_w + 4 * GAP)
        y = header + (i % ROWS) * cell_h
        draw.text((x + 2, y), label, fill="black")
        sheet.paste(golden_view(label, args.view).convert("RGB").resize(TILE, Image.Resampling.LANCZOS),
                    (x, y + LABEL_H))
        sim = simulate_glitch(label, args.seed)[0][args.view]
        sheet.paste(sim.convert("RGB").resize(TILE, Image.Resampling.LANCZOS), (x + w + GAP, y + LABEL_H))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)  # ~3x smaller
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
