#!/usr/bin/env bash
# Rebuild the shipped models from nothing: simulate, train on simulated glitches, estimate the real-pool fine-tune by
# leaving each real source out, fine-tune both shipped models (O1/O2 and O3 class sets) on the whole pool with the
# one recipe, score. Run from anywhere.
#   models/train_shipped.sh            (about four hours on 2 CPU cores; minutes on a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${GLITCHNET_RECIPE_DATA:-data/sim-shipped}
DATA3=${GLITCHNET_RECIPE_DATA3:-data/sim-shipped-stage3}
MIX=${GLITCHNET_RECIPE_MIX:-data/sim-mix-v5}
MIX3=${GLITCHNET_RECIPE_MIX3:-data/sim-mix-o3-v5}
REAL=${GLITCHNET_REAL:-../shared/data/real}
glitchnet simulate --out "$DATA" --per-class 120 --balanced --seed 2026
glitchnet simulate --out "$DATA3" --per-class 160 --balanced --seed 2027
glitchnet simulate --out "$MIX" --per-class 24 --balanced --seed 2031
glitchnet simulate --out "$MIX3" --per-class 24 --balanced --seed 2031 --classes gravityspy-o3
# Simulated-only model (models/glitchnet-sim.pt). stage 1: from scratch; stage 2: the same data again from stage 1's
# weights, a fresh cosine schedule at half the rate; stage 3: new glitches (another seed, a third more of them).
glitchnet train --data "$DATA" --out runs/shipped-stage1.pt --view all --epochs 12 --lr 2e-3 --augment class --seed 0
glitchnet train --data "$DATA" --out runs/shipped-stage2.pt --init runs/shipped-stage1.pt --view all --epochs 10 \
  --lr 1e-3 --augment class --seed 1
glitchnet train --data "$DATA3" --out models/glitchnet-sim.pt --init runs/shipped-stage2.pt --view all --epochs 30 \
  --lr 1e-3 --augment class --seed 2
glitchnet calibrate --data "$DATA3" --model models/glitchnet-sim.pt
# Real pool: the one fine-tune recipe (models/leave_source_out.py RECIPE), estimated by leaving each real source out
# (and, for the O3 set, each block of O3 time), then fine-tuned on the whole pool for each class set. The temperature
# is fitted on the held-out probabilities.
python models/leave_source_out.py --classes gravityspy-o1o2 --sim "$MIX" --real "$REAL" --out models/glitchnet.pt
python models/leave_source_out.py --classes gravityspy-o1o2 --sim "$MIX" --real "$REAL" --sources none \
  --time-folds 0 --score models/glitchnet-sim.pt --lever "simulated-only (zero-shot)"
python models/leave_source_out.py --classes gravityspy-o3 --sim "$MIX3" --real "$REAL" --out models/glitchnet-o3.pt
python models/write_metrics.py --data "$MIX" --sim-model models/glitchnet-sim.pt --model models/glitchnet.pt \
  --o3-model models/glitchnet-o3.pt --golden "$REAL/golden" --out models/metrics.json
python models/confidence_curve.py --oof runs/leave-source-out/gravityspy-o1o2-sources.npz --model models/glitchnet.pt \
  --real "$REAL"
python models/leave_source_out.py --sim "$MIX" --table    # the lever table of models/MODEL_CARD.md
rm -f runs/shipped-stage1.last.pt runs/shipped-stage2.last.pt models/glitchnet-sim.last.pt
# Last, once the checkpoints hold their metrics: the ONNX exports the hosted server serves with, without torch
# (tests/test_engine.py fails while an export is older than its checkpoint).
glitchnet export --model models/glitchnet.pt
glitchnet export --model models/glitchnet-o3.pt
