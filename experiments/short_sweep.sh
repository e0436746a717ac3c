#!/usr/bin/env bash
# A real short sweep for looking at every figure: two spaces, 16 models each, Fashion-MNIST, quick
# recipe (about 8 minutes on 2 cores). Figures and the report land in experiments/results/short_sweep/.
#   bash experiments/short_sweep.sh [n_per_space]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-16}
OUT=experiments/results/short_sweep
R=.venv/bin/regspace
mkdir -p "$OUT"
$R sample --store "$OUT/store" --space X_a --total "$N" --preset mnist --flops 2M:4M --seed 1
$R sample --store "$OUT/store" --space RegNetX --total "$N" --preset mnist --flops 2M:4M --seed 1
$R train --store "$OUT/store"
$R compare --store "$OUT/store" | tee "$OUT/compare.txt"
$R plot-edf --store "$OUT/store" --band -o "$OUT/edf.png"
$R plot-edf --store "$OUT/store" --normalize flops --band -o "$OUT/edf_flops.png"
$R plot-scatter --store "$OUT/store" --space X_a -o "$OUT/scatter_X_a.png"
$R plot-scatter --store "$OUT/store" --space RegNetX -o "$OUT/scatter_RegNetX.png"
$R plot-widths --store "$OUT/store" --space X_a -o "$OUT/widths_X_a.png"
$R plot-widths --store "$OUT/store" --space RegNetX -o "$OUT/widths_RegNetX.png"
$R plot-fit --store "$OUT/store" -o "$OUT/fit.png"
$R plot-search --store "$OUT/store" -o "$OUT/search.png"
$R report --store "$OUT/store" -o "$OUT/report.html"
