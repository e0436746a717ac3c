"""Open a regspace report in headless Chromium and check that every figure rendered.

A copy of the report gets a small script that measures every inline SVG after layout and writes the
result into the page; Chromium's --dump-dom returns that page, --screenshot a picture of it. The
check fails if any figure has no size or no drawn marks, if the browser logged an error, or if the
page tried to fetch anything (it runs with the network blocked).

    python experiments/check_report.py report.html [--screenshot report.png]

Needs Debian's chromium package (`apt-get install chromium`).
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PROBE = """<script>
window.addEventListener('load', () => {
  const figs = [...document.querySelectorAll('figure')].map(f => {
    const svg = f.querySelector('svg');
    if (!svg) return {id: f.id, ok: false, why: 'no svg'};
    const r = svg.getBoundingClientRect();
    const marks = svg.querySelectorAll('path, use, text, rect, line, polyline').length;
    return {id: f.id, width: Math.round(r.width), height: Math.round(r.height), marks: marks,
            ok: r.width > 100 && r.height > 100 && marks > 20};
  });
  const out = document.createElement('pre');
  out.id = 'regspace-check';
  out.textContent = JSON.stringify({figures: figs, tables: document.querySelectorAll('table').length});
  document.body.appendChild(out);
});
</script>"""

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def render(report, screenshot=None) -> dict:
    """Open ``report`` in headless Chromium: {"figures": [...], "tables": n, "errors": [browser errors]}."""
    html = Path(report).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as d:
        probe = Path(d) / "probe.html"
        probe.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
        if chromium() is None:
            raise RuntimeError("chromium not found: apt-get install chromium (make setup installs it)")
        base = [chromium(), *FLAGS, f"--user-data-dir={d}/profile"]
        p = subprocess.run([*base, "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
        if screenshot:
            subprocess.run(
                [*base, f"--screenshot={Path(screenshot).resolve()}", "--window-size=1200,2600", probe.as_uri()],
                capture_output=True,
                text=True,
                timeout=120,
            )
    m = re.search(r'<pre id="regspace-check">(.*?)</pre>', p.stdout, re.S)
    if not m:
        raise RuntimeError(f"the page did not finish loading in Chromium:\n{p.stderr[-2000:]}")
    result = json.loads(m.group(1).replace("&quot;", '"'))
    result["errors"] = [
        line
        for line in p.stderr.splitlines()
        if ("CONSOLE" in line and ("Error" in line or "error" in line)) or "net::ERR" in line
    ]
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("--screenshot", help="also write a PNG of the page")
    args = ap.parse_args()
    try:
        result = render(args.report, args.screenshot)
    except RuntimeError as e:
        sys.exit(str(e))
    errors = result["errors"]
    bad = [f for f in result["figures"] if not f["ok"]]
    for f in result["figures"]:
        print(
            f"{'ok ' if f['ok'] else 'BAD'} {f['id']:24} {f.get('width', 0)}x{f.get('height', 0)} px, "
            f"{f.get('marks', 0)} marks"
        )
    print(f"{len(result['figures'])} figures, {result['tables']} tables, {len(errors)} browser errors")
    for e in errors:
        print("  ", e)
    if bad or errors or not result["figures"]:
        sys.exit(1)
    print("report renders: every figure has size and content, no errors, nothing fetched")


if __name__ == "__main__":
    main()
