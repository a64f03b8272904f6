#!/usr/bin/env bash
# Rebuild the shipped model from nothing: simulate, train on simulated glitches, cross-validate on the real pool,
# fine-tune on the real pool, calibrate, score. Run from anywhere.
#   models/train_shipped.sh            (about three and a half hours on 2 CPU cores; minutes on a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${GLITCHNET_RECIPE_DATA:-data/sim-shipped}
DATA3=${GLITCHNET_RECIPE_DATA3:-data/sim-shipped-stage3}
MIX=${GLITCHNET_RECIPE_MIX:-data/sim-mix}
REAL=${GLITCHNET_REAL:-../shared/data/real}
LEVER=${GLITCHNET_RECIPE_LEVER:-finetune-freq}
glitchnet simulate --out "$DATA" --per-class 120 --balanced --seed 2026
glitchnet simulate --out "$DATA3" --per-class 160 --balanced --seed 2027
glitchnet simulate --out "$MIX" --per-class 24 --balanced --seed 2031
# Simulated-only model (models/glitchnet-sim.pt). stage 1: from scratch; stage 2: the same data again from stage 1's
# weights, a fresh cosine schedule at half the rate; stage 3: new glitches (another seed, a third more of them).
glitchnet train --data "$DATA" --out runs/shipped-stage1.pt --view all --epochs 12 --lr 2e-3 --augment class --seed 0
glitchnet train --data "$DATA" --out runs/shipped-stage2.pt --init runs/shipped-stage1.pt --view all --epochs 10 \
  --lr 1e-3 --augment class --seed 1
glitchnet train --data "$DATA3" --out models/glitchnet-sim.pt --init runs/shipped-stage2.pt --view all --epochs 30 \
  --lr 1e-3 --augment class --seed 2
glitchnet calibrate --data "$DATA3" --model models/glitchnet-sim.pt
# Real pool: every lever scored by leave-glitch-out 5-fold cross-validation (the lever table), then the chosen
# recipe fine-tunes on the whole pool; its temperature is fitted on that lever's out-of-fold probabilities.
glitchnet simulate --out "$MIX-v4" --per-class 24 --balanced --seed 2031
python models/crossval_real.py --model models/glitchnet-sim.pt --sim "$MIX" --calibrated-sim "$MIX-v4" --real "$REAL" \
  --levers zero-shot,bn-adapt,tta,finetune,finetune-freq,finetune-none,finetune-long,finetune-calibrated-sim,finetune-generic,ensemble,finetune-render
python models/finetune_real.py --start models/glitchnet-sim.pt --sim "$MIX" --real "$REAL" --lever "$LEVER" \
  --oof "runs/crossval/$LEVER.npz" --out models/glitchnet.pt
python models/write_metrics.py --data "$MIX" --sim-model models/glitchnet-sim.pt --model models/glitchnet.pt \
  --golden "$REAL/golden" --lever "$LEVER" --out models/metrics.json
python models/confidence_curve.py --oof "runs/crossval/$LEVER.npz" --model models/glitchnet.pt --real "$REAL"
python models/crossval_real.py --table    # the lever table of models/MODEL_CARD.md
rm -f runs/shipped-stage1.last.pt runs/shipped-stage2.last.pt models/glitchnet-sim.last.pt
