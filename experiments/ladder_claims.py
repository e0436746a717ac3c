"""The ladder's claims table: each claim of DDS §3 held against what the ladder study measured.

    python experiments/ladder_claims.py [experiments/ladder.toml]   # → experiments/results/ladder/claims.md

Reads the study's store at its equal-draws prefix (as `regspace study run` analyses it) and writes, per
claim, the KS distance, p-value, noise level, direction and a verdict by the Findings' rules
(regspace/analysis/findings.py, Holm-corrected over the 15 pairs): "reproduced", "not resolved at n = …" or
"contradicted". The claims and the verdict helpers live in experiments/claims.py (registry entry "ladder"),
with every other study's; this name stays for the command the README publishes.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # claims.py beside this file, from any directory

from claims import main  # noqa: E402

if __name__ == "__main__":
    main(*sys.argv[1:])
