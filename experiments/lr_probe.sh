#!/usr/bin/env bash
# Does the quick recipe's lr (0.4, tuned on ReLU X-block networks: tune_quick.py) cost MBConv and Swish
# networks points that it does not cost RegNetX? The same designs trained at lr 0.1 and at lr 0.4 under the
# design-choices study's recipe (quick, 10,000 validation images, bf16), one worker of one thread.
# A probe for choosing design_choices.toml's recipe (issue 26), not a study: K designs per space.
#   bash experiments/lr_probe.sh [K]      # → experiments/results/lr_probe/{lr0.1,lr0.4}, table on stdout
#   LRS="0.8" bash experiments/lr_probe.sh 2   # more lrs for the same designs; the table reads every lr trained
set -euo pipefail
cd "$(dirname "$0")/.."
K=${1:-2}
OUT=experiments/results/lr_probe
R=.venv/bin/regspace
for lr in ${LRS:-0.1 0.4}; do
  for space in MB_e RegNetX_swish RegNetX; do
    $R sample --store "$OUT/lr$lr" --space "$space" --total "$K" --preset mnist --flops 5M:10M --seed 11 >/dev/null
  done
  $R train --store "$OUT/lr$lr" --val-size 10000 --lr "$lr" --precision bf16-mixed --workers 1 --threads 1
done
.venv/bin/python - "$OUT" <<'PY'
import sys
from pathlib import Path

import pandas as pd

rows = []
for s in sorted(Path(sys.argv[1]).glob("lr*"), key=lambda p: float(p.name[2:])):
    lr = s.name[2:]
    r = pd.read_parquet(s / "results")[["model_id", "error", "train_losses"]]
    m = pd.read_parquet(s / "models")[["model_id", "space", "flops"]].drop_duplicates("model_id")
    r = r.merge(m, on="model_id")
    r["lr"], r["first_epoch_loss"] = float(lr), r.train_losses.map(lambda x: round(float(x[0]), 3))
    rows.append(r.drop(columns="train_losses"))
t = pd.concat(rows).pivot_table(index=["space", "model_id"], columns="lr", values=["error", "first_epoch_loss"])
print(t.round(3).to_string())
print("\nmedian error by space and lr (%):")
print(pd.concat(rows).groupby(["space", "lr"]).error.median().unstack().round(2).to_string())
PY
