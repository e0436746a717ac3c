"""Does the training precision move the ladder's errors? The same models, fp32 against bf16-mixed.

    python experiments/ladder_precision.py   # → experiments/results/ladder-fp32/precision.md

The ladder began on a CPU without AVX-512 bf16, so its first rounds trained in fp32 (`32-true`,
results/ladder-fp32/store). It was rerun whole on a CPU with bf16 (`bf16-mixed`, results/ladder/store) so
that the headline compares models trained one way. Both stores hold the same seeded draws and the same
recipe, so every model trained in both is a pair: the difference is precision plus the chaotic divergence
of two trainings that differ in rounding, which acts like a change of seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from regspace.analysis_io import load_table
from regspace.store import Store
from regspace.study import load_study

HERE = Path(__file__).parent


def paired(study_file: str = str(HERE / "ladder.toml"), fp32: str = str(HERE / "results/ladder-fp32/store")):
    study = load_study(study_file)
    cols = ["model_id", "space", "sweep_error", "precision"]
    both = []
    for path in (fp32, study.store_path):
        df = load_table(Store.open(path), spaces=list(study.spaces), recipe_hash=study.recipe.hash)
        both.append(df[df.status == "ok"][cols].drop_duplicates("model_id"))
    a, b = both
    m = a.merge(b, on=["model_id", "space"], suffixes=("_fp32", "_bf16"))
    m = m[(m.precision_fp32 == "32-true") & (m.precision_bf16 == "bf16-mixed")]
    return m


def main() -> Path:
    m = paired()
    d = (m.sweep_error_bf16 - m.sweep_error_fp32).to_numpy(float)
    ci = stats.bootstrap((d,), np.mean, n_resamples=10_000, random_state=0).confidence_interval
    rho = stats.spearmanr(m.sweep_error_fp32, m.sweep_error_bf16).statistic
    w = stats.wilcoxon(d)
    lines = [
        f"Paired models (trained in both stores): {len(m)}",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| mean error difference bf16 − fp32 (points) | {d.mean():+.3f} (95 % bootstrap CI {ci.low:+.3f} … "
        f"{ci.high:+.3f}) |",
        f"| median difference | {np.median(d):+.3f} |",
        f"| s.d. of the difference | {d.std(ddof=1):.3f} |",
        f"| median absolute difference | {np.median(np.abs(d)):.3f} |",
        f"| Wilcoxon signed-rank p | {w.pvalue:.3g} |",
        f"| Spearman ρ (fp32 vs bf16 errors) | {rho:.3f} |",
        "",
        "| space | pairs | mean diff | median fp32 | median bf16 |",
        "|---|---|---|---|---|",
    ]
    for space, g in m.groupby("space", sort=False):
        dd = g.sweep_error_bf16 - g.sweep_error_fp32
        lines.append(
            f"| {space} | {len(g)} | {dd.mean():+.3f} | {g.sweep_error_fp32.median():.2f} | "
            f"{g.sweep_error_bf16.median():.2f} |"
        )
    out = HERE / "results/ladder-fp32/precision.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


if __name__ == "__main__":
    main()
