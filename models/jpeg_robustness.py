"""Per-image accuracy of the shipped model on the verified real pool, as it is and re-encoded as JPEG.

    python models/jpeg_robustness.py [--model models/glitchnet.pt]

The figures of the model card's "JPEG uploads" paragraph. The shipped model has trained on these images, so the
figure to read is the difference between the columns, not their level.
"""

from __future__ import annotations

import argparse

from glitchnet.evaluate import jpeg_robustness
from glitchnet.inference import Predictor
from glitchnet.realpool import VERIFIED_SOURCES, scan_real_pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models/glitchnet.pt")
    parser.add_argument("--real", help="the real pool (default ../shared/data/real)")
    args = parser.parse_args()
    table = scan_real_pool(args.real)
    table = table[table["source"].isin(VERIFIED_SOURCES)]
    r = jpeg_robustness(Predictor(args.model), table["path"].tolist(), table["frame"].tolist(),
                        table["label"].tolist())
    print(f"{r['n']} verified real images; original: {r['original']:.1%}")
    for q, x in r["jpeg"].items():
        print(f"JPEG quality {q}: {x['accuracy']:.1%} ({x['accuracy'] - r['original']:+.1%}), "
              f"{x['unchanged']:.1%} of answers unchanged")


if __name__ == "__main__":
    main()
