#!/usr/bin/env bash
# Makes the figures and tables of docs/trust-region.md. Run from the repository root after `make .venv`:
#   bash scripts/trust_region_docs.sh        (about 10 minutes on a 2-core machine)
set -euo pipefail
ROBOPG=${ROBOPG:-.venv/bin/robopg}
OUT=docs/trust-region
mkdir -p "$OUT"
run() {  # name, then the arguments of robopg variance
  local name=$1; shift
  echo "== robopg variance $* --out $OUT/$name"
  $ROBOPG variance "$@" --algorithms pg,npg,ppo --out "$OUT/$name" | tee "$OUT/$name.txt"
}
run chain exact:chain --batches 60 --batch-size 1000
run lqr   exact:lqr   --batches 60 --batch-size 1000
