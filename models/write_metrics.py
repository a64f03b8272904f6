"""Score a checkpoint on the simulated test split and on real labelled figures; write the metrics JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from glitchnet.checkpoint import load_checkpoint
from glitchnet.evaluate import evaluate_checkpoint, evaluate_labelled_folder, top_confusions
from glitchnet.inference import Predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True, help="the simulated dataset the model was trained on")
    parser.add_argument("--golden", help="real labelled figures, <Class>/<file> (never used for training)")
    parser.add_argument("--model", default="models/glitchnet.pt")
    parser.add_argument("--out", default="models/metrics.json")
    args = parser.parse_args()

    ckpt = load_checkpoint(args.model)
    history = ckpt.metrics.get("history", [])
    sim = evaluate_checkpoint(args.model, args.data, split="test", fallback_split=None).metrics
    result = {
        "model": Path(args.model).name,
        "training": {
            "data": "simulated (glitchnet simulate), Kaggle layout, all four views as samples",
            "config": ckpt.config,
            "epochs_run": len(history),
            "best_epoch": ckpt.epoch,
            "train_seconds": round(sum(h.get("seconds", 0.0) for h in history), 1),
            "history": history,
        },
        "calibration": ckpt.metrics.get("calibration"),
        "simulated_test": {k: sim[k] for k in ("n", "accuracy", "macro_f1", "per_class", "confusion", "classes")},
    }
    if args.golden and Path(args.golden).is_dir():
        real = evaluate_labelled_folder(Predictor(args.model), args.golden)
        result["real_golden"] = {
            "source": "Gravity Spy golden subjects (600x450 figures; GIF frames = the four views)",
            "per_image": {k: real["per_image"][k] for k in ("n", "accuracy", "macro_f1")},
            "per_glitch_fused": {k: real["per_glitch"][k] for k in ("n", "accuracy", "macro_f1")},
            "recall_per_class": {
                c: {"per_image": real["per_image"]["per_class"][c]["recall"],
                    "per_glitch": real["per_glitch"]["per_class"][c]["recall"],
                    "glitches": real["per_glitch"]["per_class"][c]["support"]}
                for c in real["per_glitch"]["classes"]
            },
            "confusions_per_glitch": top_confusions(real["per_glitch"], k=12),
            "glitches": real["glitches"],
        }
        recalls = result["real_golden"]["recall_per_class"].items()
        zero = [c for c, r in recalls if r["glitches"] and not r["per_glitch"]]
        result["real_golden"]["classes_at_zero_recall"] = zero
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))
    print(f"simulated test: accuracy {sim['accuracy']:.4f}, macro-F1 {sim['macro_f1']:.4f} ({sim['n']} images)")
    if "real_golden" in result:
        g = result["real_golden"]
        print(f"real golden: per image {g['per_image']['accuracy']:.4f} ({g['per_image']['n']}), "
              f"per glitch fused {g['per_glitch_fused']['accuracy']:.4f} ({g['per_glitch_fused']['n']}); "
              f"zero recall: {', '.join(g['classes_at_zero_recall']) or 'none'}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
