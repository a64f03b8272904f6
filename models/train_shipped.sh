#!/usr/bin/env bash
# Rebuild the shipped model from nothing: simulate the training data, train, calibrate, score. Run from anywhere.
#   models/train_shipped.sh            (about an hour on 2 CPU cores; a few minutes on a GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${GLITCHNET_RECIPE_DATA:-data/sim-shipped}
GOLDEN=${GLITCHNET_GOLDEN:-../shared/data/real/golden}
glitchnet simulate --out "$DATA" --per-class 120 --balanced --seed 2026
# stage 1: from scratch; stage 2: the same data again from stage 1's weights, a fresh cosine schedule at half the rate
glitchnet train --data "$DATA" --out runs/shipped-stage1.pt --view all --epochs 12 --lr 2e-3 --augment class --seed 0
glitchnet train --data "$DATA" --out models/glitchnet.pt --init runs/shipped-stage1.pt --view all --epochs 10 \
  --lr 1e-3 --augment class --seed 1
glitchnet calibrate --data "$DATA" --model models/glitchnet.pt
python models/write_metrics.py --data "$DATA" --golden "$GOLDEN" --model models/glitchnet.pt --out models/metrics.json
rm -f models/glitchnet.last.pt
