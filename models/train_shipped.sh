#!/usr/bin/env bash
# Rebuild the shipped model from nothing: simulate the training data, train, calibrate, score. Run from anywhere.
#   models/train_shipped.sh            (about two and a half hours on 2 CPU cores; minutes on a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${GLITCHNET_RECIPE_DATA:-data/sim-shipped}
DATA3=${GLITCHNET_RECIPE_DATA3:-data/sim-shipped-stage3}
GOLDEN=${GLITCHNET_GOLDEN:-../shared/data/real/golden}
glitchnet simulate --out "$DATA" --per-class 120 --balanced --seed 2026
glitchnet simulate --out "$DATA3" --per-class 160 --balanced --seed 2027
# stage 1: from scratch; stage 2: the same data again from stage 1's weights, a fresh cosine schedule at half the rate;
# stage 3: new glitches (another seed, a third more of them) from stage 2's weights, a longer cosine schedule
glitchnet train --data "$DATA" --out runs/shipped-stage1.pt --view all --epochs 12 --lr 2e-3 --augment class --seed 0
glitchnet train --data "$DATA" --out runs/shipped-stage2.pt --init runs/shipped-stage1.pt --view all --epochs 10 \
  --lr 1e-3 --augment class --seed 1
glitchnet train --data "$DATA3" --out models/glitchnet.pt --init runs/shipped-stage2.pt --view all --epochs 30 \
  --lr 1e-3 --augment class --seed 2
glitchnet calibrate --data "$DATA3" --model models/glitchnet.pt
python models/write_metrics.py --data "$DATA3" --golden "$GOLDEN" --model models/glitchnet.pt --out models/metrics.json
rm -f models/glitchnet.last.pt runs/shipped-stage1.last.pt runs/shipped-stage2.last.pt
