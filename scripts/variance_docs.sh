#!/usr/bin/env bash
# Makes every figure and table of docs/variance.md. Run from the repository root after `make .venv`:
#   bash scripts/variance_docs.sh            (about 15 minutes on a 2-core machine)
set -euo pipefail
ROBOPG=${ROBOPG:-.venv/bin/robopg}
OUT=docs/variance
EST=reinforce,rtg,rtg+mean,rtg+value,gae,rtg+optimal
mkdir -p "$OUT"
run() {  # name, then the arguments of robopg variance
  local name=$1; shift
  echo "== robopg variance $* --out $OUT/$name"
  "$ROBOPG" variance "$@" --estimators "$EST" --out "$OUT/$name" | tee "$OUT/$name.txt"
}
run chain       exact:chain       --batches 1000 --batch-size 400  --batch-sizes 50,100,200
run gridworld   exact:gridworld-H20 --batches 1000 --batch-size 400 --batch-sizes 50,100,200
run lqr         exact:lqr         --batches 1000 --batch-size 400  --batch-sizes 50,100,200
run hopper      Hopper-v5         --batches 50   --batch-size 5000 --batch-sizes 1250,2500 --seed 0
run halfcheetah HalfCheetah-v5    --batches 30   --batch-size 5000 --batch-sizes 1250,2500 --seed 0
