"""Leave-source-out: how right the recipe is on real glitches from a source it never saw; then the shipped fine-tune.

    python models/leave_source_out.py --classes gravityspy-o1o2 --sim data/sim-mix --out models/glitchnet.pt
    python models/leave_source_out.py --classes gravityspy-o3 --sim data/sim-mix-o3 --out models/glitchnet-o3.pt

For each real source (golden subjects, O1 examples, Scratchy fixtures, hobbyist labels, the O3 scattering pool) a
model is fine-tuned from the simulated-only model with that source held out, together with every glitch joined to
it (a near-duplicate copy, an O3 glitch of the same train), and scored on it, per glitch with views fused. Images of
a class the chosen class set lacks are left out (the O1/O2 set has no Fast_Scattering, the O3 set no
None_of_the_Above). For the O3 set, the O3 pool is also scored by leave-time-block-out (``--time-folds`` folds of
glitches grouped into trains less than 60 s apart): the same recipe, the pool's other sources always training.
Then the recipe fine-tunes on the whole pool, the temperature is fitted on the held-out probabilities, and the
checkpoint carries these figures. Results go to ``--json`` (one entry per class set).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

from glitchnet.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from glitchnet.classes import CLASS_SETS, get_class_set
from glitchnet.crossval import FinetuneConfig, finetune, glitch_scores, interpolate_weights
from glitchnet.data import load_split, scan_dataset
from glitchnet.evaluate import expected_calibration_error, fit_temperature, predict_logits, softmax, wilson_interval
from glitchnet.realpool import SOURCE_GROUPS, glitch_folds, leakage_mask, load_real_pool, source_folds

RECIPE = FinetuneConfig(arch="glitchnet-freq", epochs=6, lr=3e-4, class_balance=0.5, real_per_epoch=700,
                        sim_per_real=0.5, precise_bn=1024)
"""The one fine-tune recipe of both shipped models: the frequency-aware network from the simulated-only weights, 6
epochs of 700 real images (drawn with probability proportional to class count^-1/2, so the O3 pool's three well-fed
classes do not swallow the rest) and 350 simulated ones (every class in view), class-specific augmentation."""

UNSURE_BELOW = 0.6
"""The app's "not sure" rule (``inference``), counted on the held-out answers."""

SUMMARY_KEYS = ("glitches", "correct", "accuracy", "wilson95", "macro_f1")


def _scores(pool, probs, mask, class_set) -> dict:
    return glitch_scores(pool, probs, mask, class_set, unsure_below=UNSURE_BELOW)


ALPHAS = (1.0, 0.75, 0.5)
"""WiSE-FT variants scored from every held-out fine-tune (``crossval.interpolate_weights``): 1 is the fine-tune as it
is; the final model takes the one with the best mean over the held-out sources."""


def held_out(name: str, pool, test: np.ndarray, labels: np.ndarray, start: Checkpoint, x_sim, y_sim,
             class_set, probs: dict[float, np.ndarray]) -> None:
    """Fine-tune without ``test`` (and what is joined to it); write each variant's probabilities into
    ``probs[alpha][test]``."""
    t0 = time.perf_counter()
    train = (labels >= 0) & ~leakage_mask(pool, test)
    classes = list(class_set.names)
    model = finetune(start, pool.images[train], labels[train], x_sim, y_sim, RECIPE, classes=classes)
    mix = np.concatenate([pool.images[train], x_sim]) if len(x_sim) else pool.images[train]
    for alpha in probs:
        variant = model if alpha == 1.0 else interpolate_weights(model, start, classes, alpha, mix, RECIPE)
        probs[alpha][test] = softmax(predict_logits(variant, pool.images[test]), 1.0)
    print(f"{name}: trained on {int(train.sum())} real images, scored {int(test.sum())} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)


def lever_table(results: dict) -> str:
    """The lever table on the leave-source-out estimate: per glitch, each source held out, per class set."""
    lines = []
    for set_name, entry in results.items():
        rows = dict(entry.get("levers", {}))
        if entry.get("sources"):
            chosen = entry.get("chosen_interpolate", 1.0)
            name = "**the recipe**: fine-tune" + (f", interpolate {chosen:g} (WiSE-FT)" if chosen != 1.0 else "")
            rows[name] = {"sources": entry["sources"], "trained_on": []}
        sources = list(SOURCE_GROUPS)
        lines += [f"\n{set_name}:", "| lever | " + " | ".join(sources) + " | mean of sources |",
                  "|---" * (len(sources) + 2) + "|"]
        for name, lever in rows.items():
            cells, accs = [], []
            seen = {s for s in lever.get("trained_on", [])}
            for source in sources:
                s = lever["sources"].get(source)
                if s is None:
                    cells.append("–")
                    continue
                lo, hi = s["wilson95"]
                leak = " (trained on it)" if set(SOURCE_GROUPS[source]) & seen else ""
                cells.append(f"{s['correct']}/{s['glitches']} = {s['accuracy']:.0%} [{lo:.0%}, {hi:.0%}]{leak}")
                if not leak:
                    accs.append(s["accuracy"])
            mean = f"{np.mean(accs):.1%}" if len(accs) == len(sources) else "–"
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines)


def main() -> int:
    global RECIPE
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", default="models/glitchnet-sim.pt", help="the simulated-only model")
    parser.add_argument("--classes", choices=tuple(CLASS_SETS), default="gravityspy-o1o2")
    parser.add_argument("--sim", required=True, help="simulated dataset of the same class set (its train split)")
    parser.add_argument("--real", help="the real pool (default ../shared/data/real)")
    parser.add_argument("--out", help="write the fine-tune on the whole pool here (omit to only estimate)")
    parser.add_argument("--json", default="models/leave_source_out.json")
    parser.add_argument("--sources", default="all", help=f"comma list of {', '.join(SOURCE_GROUPS)}, all or none")
    parser.add_argument("--time-folds", type=int, default=3, help="leave-time-block-out folds on the O3 pool (0: off)")
    parser.add_argument("--oof", default="runs/leave-source-out", help="where held-out probabilities go (.npz)")
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs, help="override the recipe's epochs (quick checks)")
    parser.add_argument("--real-per-epoch", type=int, default=RECIPE.real_per_epoch)
    parser.add_argument("--alphas", default=",".join(f"{a:g}" for a in ALPHAS),
                        help="WiSE-FT interpolations to score (1: the plain fine-tune); the best on the held-out "
                             "figures makes the final model")
    parser.add_argument("--score", metavar="CHECKPOINT",
                        help="score this checkpoint as it is on every source (no training) and stop: a lever of the "
                             "table, honest for the sources it never trained on")
    parser.add_argument("--lever", help="the table's name for --score's checkpoint (default: its file name)")
    parser.add_argument("--table", action="store_true", help="print the lever table from --json and stop")
    args = parser.parse_args()
    if args.table:
        print(lever_table(json.loads(Path(args.json).read_text())))
        return 0
    RECIPE = dataclasses.replace(RECIPE, epochs=args.epochs, real_per_epoch=args.real_per_epoch)

    class_set = get_class_set(args.classes)
    start = load_checkpoint(args.start)
    pool = load_real_pool(args.real)
    labels = pool.labels_in(class_set)
    scan = scan_dataset(args.sim, view="all", classes=class_set)
    x_sim, y_sim, _ = load_split(scan, "train", None, workers=2)
    print(f"pool: {len(pool.table)} images, {int((labels >= 0).sum())} of classes in {class_set.name}; "
          f"simulated mix: {len(y_sim)} images", flush=True)
    results_path = Path(args.json)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    entry = results.setdefault(class_set.name, {})
    entry.update({"start": args.start, "sim": args.sim, "recipe": dataclasses.asdict(RECIPE),
                  "unsure_below": UNSURE_BELOW})
    Path(args.oof).mkdir(parents=True, exist_ok=True)
    if args.score:
        scored_model = load_checkpoint(args.score)
        model_set = scored_model.class_set
        probs = softmax(predict_logits(scored_model.build_model(), pool.images), 1.0)
        lever = entry.setdefault("levers", {}).setdefault(args.lever or Path(args.score).stem, {})
        lever.update({"checkpoint": args.score, "trained_on": scored_model.metrics.get("real_training_sources") or [],
                      "sources": {}})
        for name, mask in source_folds(pool).items():
            test = mask & (labels >= 0) & (pool.labels_in(model_set) >= 0)
            if test.any():
                lever["sources"][name] = {k: v for k, v in _scores(pool, probs, test, model_set).items()
                                          if k != "rows"}
        results_path.write_text(json.dumps(results, indent=1))
        print(lever_table(results))
        return 0

    wanted = list(SOURCE_GROUPS) if args.sources == "all" else [] if args.sources == "none" \
        else args.sources.split(",")
    alphas = tuple(float(a) for a in args.alphas.split(","))
    probs = {alpha: np.zeros((len(pool.table), len(class_set))) for alpha in alphas}
    scored = np.zeros(len(pool.table), bool)
    variants: dict[float, dict] = {alpha: {"sources": {}} for alpha in alphas}
    for name, mask in source_folds(pool).items():
        if name not in wanted:
            continue
        test = mask & (labels >= 0)
        if not test.any():
            continue
        held_out(name, pool, test, labels, start, x_sim, y_sim, class_set, probs)
        scored |= test
        for alpha in alphas:
            variants[alpha]["sources"][name] = _scores(pool, probs[alpha], test, class_set)
            s = variants[alpha]["sources"][name]
            print(f"  {name}, interpolate {alpha:g}: {s['correct']}/{s['glitches']} = {s['accuracy']:.1%}", flush=True)

    o3 = (pool.table["source"] == "o3-scattering").to_numpy() & (labels >= 0)
    if args.time_folds and o3.any() and "Fast_Scattering" in class_set:
        folds = glitch_folds(pool, args.time_folds, seed=0, mask=o3)
        time_probs = {alpha: np.zeros_like(probs[alpha]) for alpha in alphas}
        for k in range(args.time_folds):
            held_out(f"O3 time block {k + 1}/{args.time_folds}", pool, folds == k, labels, start, x_sim, y_sim,
                     class_set, time_probs)
        for alpha in alphas:
            t = variants[alpha]["o3_time_blocks"] = _scores(pool, time_probs[alpha], o3, class_set)
            t.update(folds=args.time_folds, groups=int(pool.table.loc[o3, "group"].nunique()))
            print(f"O3 pool, leave-time-block-out, interpolate {alpha:g}: {t['correct']}/{t['glitches']} = "
                  f"{t['accuracy']:.1%}; Fast_Scattering {t['recall'].get('Fast_Scattering')}", flush=True)

    def merit(alpha: float) -> tuple[float, float]:
        v = variants[alpha]
        accs = [s["accuracy"] for s in v["sources"].values()]
        if "o3_time_blocks" in v:
            accs.append(v["o3_time_blocks"]["accuracy"])
        return (float(np.mean(accs)) if accs else 0.0, alpha)  # ties go to the plainer fine-tune

    best = max(alphas, key=merit)
    RECIPE = dataclasses.replace(RECIPE, interpolate=best)
    entry.update({"recipe": dataclasses.asdict(RECIPE), "chosen_interpolate": best})
    levers = entry.setdefault("levers", {})
    for alpha in alphas:
        v = variants[alpha]
        if alpha != best and v["sources"]:
            levers["fine-tune" + (f", interpolate {alpha:g} (WiSE-FT)" if alpha != 1.0 else " as it is")] = {
                "trained_on": [], "sources": {k: {key: x for key, x in s.items() if key != "rows"}
                                              for k, s in v["sources"].items()}}
    chosen = variants[best]
    per_source = chosen["sources"]
    if per_source:
        entry["sources"] = per_source
        correct, total = sum(s["correct"] for s in per_source.values()), sum(s["glitches"] for s in per_source.values())
        entry["mean_over_sources"] = float(np.mean([s["accuracy"] for s in per_source.values()]))
        entry["pooled"] = {"glitches": total, "correct": correct, "accuracy": correct / total,
                           "wilson95": list(wilson_interval(correct, total))}
        np.savez_compressed(Path(args.oof) / f"{class_set.name}-sources.npz", probabilities=probs[best][scored],
                            glitch=pool.table["glitch"].to_numpy()[scored],
                            label=pool.table["label"].to_numpy()[scored],
                            source=pool.table["source"].to_numpy()[scored])
    if "o3_time_blocks" in chosen:
        entry["o3_time_blocks"] = chosen["o3_time_blocks"]
        entry["o3_time_blocks_by_interpolate"] = {
            f"{alpha:g}": {k: variants[alpha]["o3_time_blocks"][k] for k in ("correct", "glitches", "accuracy",
                                                                            "recall")} for alpha in alphas}
    print(f"chosen: interpolate {best:g} (mean held-out accuracy {merit(best)[0]:.1%})", flush=True)
    results_path.write_text(json.dumps(results, indent=1))

    if args.out:
        train = labels >= 0
        t0 = time.perf_counter()
        model = finetune(start, pool.images[train], labels[train], x_sim, y_sim, RECIPE,
                         progress=lambda done, total: print(f"\rstep {done}/{total}", end="", flush=True),
                         classes=list(class_set.names))
        print(f"\nfine-tuned on the whole pool ({time.perf_counter() - t0:.0f} s)")
        temperature, calibration = 1.0, None
        if scored.any():
            held = probs[best][scored]
            y = labels[scored]
            logits = np.log(np.clip(held, 1e-12, 1.0))
            temperature = fit_temperature(logits, y)
            calibration = {"temperature": temperature, "fitted_on": f"{int(scored.sum())} held-out-source images",
                           "ece_before": expected_calibration_error(softmax(logits, 1.0), y),
                           "ece_after": expected_calibration_error(softmax(logits, temperature), y)}
        used = pool.table[train]
        summary = {k: {key: v[key] for key in SUMMARY_KEYS} for k, v in per_source.items()}
        ckpt = Checkpoint(
            state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            classes=list(class_set.names), width=start.width, views=list(start.views), temperature=temperature,
            arch=RECIPE.arch, epoch=RECIPE.epochs,
            config={**dataclasses.asdict(RECIPE), "view": "all", "stage": "real fine-tune", "classes": class_set.name,
                    "data": f"real Gravity Spy pool ({used['glitch'].nunique()} glitches) + {Path(args.sim).name}",
                    "start": args.start, "sim": args.sim, "start_config": start.config},
            metrics={"real_training_images": int(len(used)), "real_training_glitches": int(used["glitch"].nunique()),
                     "real_training_sources": sorted(set(used["source"])), "calibration": calibration,
                     "real_leave_source_out": {"sources": summary, "mean": entry.get("mean_over_sources"),
                                               "pooled": entry.get("pooled")} if summary else None,
                     "real_o3_time_blocks": {key: entry["o3_time_blocks"][key] for key in (*SUMMARY_KEYS, "recall")}
                     if "o3_time_blocks" in entry else None},
        )
        save_checkpoint(ckpt, args.out)
        print(f"wrote {args.out}: {len(class_set)} classes, fine-tuned on {len(used)} real images")
    results_path.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
