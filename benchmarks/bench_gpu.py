"""The GPU path on a CUDA machine, in one command of about 5 minutes on one GPU (issue 23: GPUs that work on the
first try). Prints the environment first, then runs each section as `regspace train` subprocesses into fresh
stores, and ends with the problems it found (exit 1) or "no problem found" (exit 0).

Environment (from a child process, so that this one never holds a CUDA context): torch and its CUDA, the
architectures the build has kernels for (torch.cuda.get_arch_list()) against each GPU's capability, bf16 with
and without emulation, the compute mode, what the set-up's index choice (regspace/torch_index.py) says for
this machine, the CUDA context's own memory and a CUDA process's host memory (against the planner's
figures), and the raw `nvidia-smi`.

Sections, in this order (each skipped, with a line, when less of the time budget is left than it takes):
1. scaling: 1, 2, 4 workers per GPU on the quick recipe (models/h, with 1 worker as the baseline in the same
   invocation; mean utilisation of the GPU torch used, its nvidia-smi id mapped from torch's index; peak
   reserved memory per model);
2. measured planning: larger models added to a store that holds GPU results; the plan from the measured
   ratio against the plan from the estimate, and each model's plan against its measured reserved peak;
3. fp16 divergence: 4 models forced to 16-mixed at lr 1e8 must all be recorded diverged (not failed), and
   the run must end normally (the diverged path under fp16 loss scaling, which a CPU cannot run);
4. beside a process holding 80 % of the GPU's memory (OOM retries from the summary line when it counts them,
   failed models and their reasons);
5. the cifar recipe (flip + crop, label smoothing, batch 1024; 5 epochs of 5,120 images; CIFAR-10 if its raw
   files are here, else Fashion-MNIST);
6. the mapped path (--map-above 0);
7. recycling (--recycle 4, at least 24 models, 2 workers);
8. a second GPU (--devices 0,1) when there is one.
Every result must be ok with its precision matching its GPU (bf16-mixed from sm80, 16-mixed below).

    python benchmarks/bench_gpu.py [--models 12] [--per-device 1,2,4] [--budget 300] [--cache DIR] [--data-dir DIR]

No network is needed when the dataset's raw files are found: --data-dir (or $REGSPACE_DATA, or the system
copy in /usr/share/datasets); decoded copies go to --cache (default: a temporary directory). Without a CUDA
GPU it prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # regspace from this checkout, whatever the working directory


# -- pure helpers (tests/test_bench_gpu.py) --------------------------------------------------------
def smi_id(index: int, visible: str | None, uuid: str | None) -> str:
    """The nvidia-smi --id of torch's GPU ``index``: its UUID when torch gives one; else the
    CUDA_VISIBLE_DEVICES entry it stands for (an index or a UUID); else the index itself."""
    if uuid:
        return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
    entries = [x.strip() for x in visible.split(",")] if visible else []
    if index < len(entries) and entries[index]:
        return entries[index]
    return str(index)


def has_kernels(arch_list: list[str], capability: tuple[int, int]) -> bool:
    """Whether a torch build whose get_arch_list() is ``arch_list`` ("sm_90", "sm_120", "compute_120" for
    PTX) runs on a GPU of ``capability``: a kernel for sm_XY runs on sm_XZ with Z >= Y; PTX for compute_XY
    compiles for any GPU at least XY."""
    for arch in arch_list:
        m = re.fullmatch(r"(sm|compute)_(\d+?)(\d)a?", arch)
        if not m:
            continue
        built = (int(m.group(2)), int(m.group(3)))
        if m.group(1) == "sm" and built[0] == capability[0] and built[1] <= capability[1]:
            return True
        if m.group(1) == "compute" and built <= tuple(capability):
            return True
    return False


def expected_precision(capability: tuple[int, int]) -> str:
    """What recipe precision ``auto`` must give on a GPU of this capability (issue 23 fault 1)."""
    return "bf16-mixed" if tuple(capability) >= (8, 0) else "16-mixed"


def oom_retries(text: str) -> int | None:
    """Out-of-memory retries a `regspace train` summary says it made, or None when it does not count them
    (read defensively: "2 OOM retries", "OOM retries: 2", "retried 2 after out of memory" …)."""
    patterns = (
        r"(\d+)\s+(?:OOM|out[- ]of[- ]memory)\s+retr",
        r"(?:OOM|out[- ]of[- ]memory)\s+retr\w*\s*[:=]?\s*(\d+)",
        r"retried\s+(\d+)\D{0,40}(?:OOM|out[- ]of[- ]memory)",
    )
    for p in patterns:
        m = re.search(p, text, re.I)
        if m:
            return int(m.group(1))
    return None


def summary_numbers(text: str) -> dict:
    """models/hour and worker count from `regspace train`'s summary line (None where absent)."""
    rate = re.search(r"([\d.]+) models/hour", text)
    workers = re.search(r"(\d+) worker\(s\)", text)
    return {
        "models_per_hour": float(rate.group(1)) if rate else None,
        "workers": int(workers.group(1)) if workers else None,
    }


# -- running regspace --------------------------------------------------------------------------------
class Bench:
    def __init__(self, args, tmp: Path):
        self.args, self.tmp, self.problems = args, tmp, []
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}  # regspace from this checkout
        self.env["REGSPACE_CACHE"] = str(Path(args.cache).resolve()) if args.cache else str(tmp / "cache")
        if args.data_dir:
            self.env["REGSPACE_DATA"] = str(Path(args.data_dir).resolve())
        self.t0 = time.monotonic()
        self.results = []  # (section, DataFrame) of every run, for the precision check
        self.skipped = []  # sections the time budget left out

    def regspace(self, *args, check=True) -> subprocess.CompletedProcess:
        p = subprocess.run(
            [sys.executable, "-m", "regspace", *map(str, args)], capture_output=True, text=True, env=self.env
        )
        if check and p.returncode != 0:
            raise RuntimeError(f"regspace {' '.join(map(str, args[:2]))} failed ({p.returncode}): "
                               f"{(p.stderr.strip().splitlines() or [''])[-1][:300]}")  # fmt: skip
        return p

    def left(self) -> float:
        return self.args.budget - (time.monotonic() - self.t0)

    def store(self, name: str, n: int, flops: str = "2M:4M", seed: int = 0) -> Path:
        """A fresh store with ``n`` models, half X_c and half RegNetX (mnist preset)."""
        s = self.tmp / name
        for i, space in enumerate(("X_c", "RegNetX")):
            k = n // 2 + (n % 2 if i == 0 else 0)
            self.regspace("sample", "--store", s, "--space", space, "-n", k, "--preset", "mnist", "--flops", flops,
                          "--seed", seed)  # fmt: skip
        return s

    def train(self, section: str, store: Path, *args, util: str | None = None) -> dict:
        t = time.perf_counter()
        sampler = Utilisation(util) if util else None
        if sampler:
            sampler.start()
        try:
            p = self.regspace("train", "--store", store, *args, check=False)
        finally:
            if sampler:
                sampler.stop()
        wall = time.perf_counter() - t
        if p.returncode != 0:
            self.problems.append(f"{section}: regspace train exited {p.returncode}: {p.stderr.strip()[-300:]}")
        import pandas as pd

        r = pd.read_parquet(store / "results") if (store / "results").exists() else pd.DataFrame()
        self.results.append((section, r))
        bad = r[r.status != "ok"] if len(r) else r
        for _, row in bad.iterrows():
            self.problems.append(f"{section}: {row.model_id} {row.status}: {row.reason}")
        return {"wall": wall, "out": p.stdout + p.stderr, "results": r, "util": sampler.mean if sampler else None,
                **summary_numbers(p.stdout)}  # fmt: skip


class Utilisation:
    """nvidia-smi's utilisation of one GPU (by its nvidia-smi id), sampled every 0.5 s in a thread."""

    def __init__(self, gpu: str):
        self.gpu, self.samples, self.stopping = gpu, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stopping.is_set():
            try:
                p = subprocess.run(
                    ["nvidia-smi", f"--id={self.gpu}", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                    capture_output=True, text=True, timeout=10,
                )  # fmt: skip
                if p.returncode == 0 and p.stdout.strip().isdigit():
                    self.samples.append(int(p.stdout.strip()))
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.stopping.wait(0.5)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join()

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


# -- the environment ----------------------------------------------------------------------------------
PROBE = r"""
import inspect, json, os, torch
out = {"torch": torch.__version__, "cuda": torch.version.cuda, "arch_list": torch.cuda.get_arch_list(),
       "cudnn": torch.backends.cudnn.version(), "gpus": []}
sig = inspect.signature(torch.cuda.is_bf16_supported)
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    with torch.cuda.device(i):
        bf16 = torch.cuda.is_bf16_supported()
        native = None  # torch before 2.3 has no including_emulation
        if "including_emulation" in sig.parameters:
            native = torch.cuda.is_bf16_supported(including_emulation=False)
    out["gpus"].append({"index": i, "name": p.name, "capability": [p.major, p.minor], "memory": p.total_memory,
                        "uuid": str(getattr(p, "uuid", "") or ""), "bf16": bf16, "bf16_native": native})
# a conv forward/backward on GPU 0: what the CUDA context and libraries take beyond torch's reserved memory
x = torch.randn(256, 64, 28, 28, device="cuda", requires_grad=True)
w = torch.randn(64, 64, 3, 3, device="cuda", requires_grad=True)
with torch.autocast("cuda", dtype=torch.bfloat16 if out["gpus"][0]["capability"][0] >= 8 else torch.float16):
    torch.nn.functional.conv2d(x, w, padding=1).float().square().mean().backward()
torch.cuda.synchronize()
free, total = torch.cuda.mem_get_info(0)
out["reserved"] = torch.cuda.memory_reserved(0)
out["used"] = total - free
out["pid"] = os.getpid()
with open(f"/proc/{os.getpid()}/status") as f:
    out["host_peak"] = next((int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:")), None)
import subprocess
p = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                   capture_output=True, text=True)
out["apps"] = p.stdout
print(json.dumps(out))
"""


def smi(*args: str) -> str:
    try:
        p = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(nvidia-smi: {e})"
    return p.stdout.strip() or p.stderr.strip()


def environment(bench: Bench) -> dict:
    used_before = smi("--query-gpu=index,memory.used", "--format=csv,noheader,nounits")
    p = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=bench.env, timeout=300)
    if p.returncode != 0:
        raise RuntimeError(f"the environment probe failed: {p.stderr.strip()[-500:]}")
    env = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"torch {env['torch']} (CUDA {env['cuda']}, cuDNN {env['cudnn']}); kernels for: {' '.join(env['arch_list'])}")
    for g in env["gpus"]:
        cap = tuple(g["capability"])
        sm = f"sm_{cap[0]}{cap[1]}"
        native = has_kernels(env["arch_list"], cap)
        has = "yes" if native else "NO (no kernels for this GPU in this build: issue 23 fault 3)"
        print(f"GPU {g['index']}: {g['name']}, {sm}, {g['memory'] / 2**30:.0f} GiB, uuid {g['uuid'] or '?'}; "
              f"kernels for it: {has}; bf16 {g['bf16']} (without emulation: {g['bf16_native']}); "
              f"auto precision must be {expected_precision(cap)}")  # fmt: skip
        if not native:
            bench.problems.append(f"torch has no kernels for GPU {g['index']} ({sm})")
    print("compute mode etc.:\n" + smi("--query-gpu=index,uuid,name,compute_mode,driver_version,compute_cap,"
                                       "memory.total,memory.used", "--format=csv"))  # fmt: skip
    from regspace.torch_index import choose, query_gpus

    args, why = choose("Linux", True, lambda url: True, gpus=query_gpus())
    print(f"the set-up's torch index here: {' '.join(args) or '(default)'} — {why}")
    from regspace.train.devices import CUDA_CONTEXT_BYTES, GPU_WORKER_HOST_BYTES

    mine = [line.split(",") for line in env["apps"].strip().splitlines()]
    app = next((int(u) for pid, u in mine if pid.strip() == str(env["pid"]) and u.strip().isdigit()), None)
    before = int(used_before.splitlines()[0].split(",")[1]) << 20 if used_before[:1].isdigit() else None
    process = (app << 20) if app is not None else (env["used"] - before if before is not None else None)
    if process is not None:
        print(f"CUDA context and libraries: {(process - env['reserved']) / 2**20:.0f} MiB beyond torch's reserved "
              f"memory (the planner assumes {CUDA_CONTEXT_BYTES >> 20} MiB)")  # fmt: skip
    if env.get("host_peak"):
        print(
            f"host memory of a CUDA process after a conv step: {env['host_peak'] / 2**30:.2f} GiB "
            f"(the planner assumes {GPU_WORKER_HOST_BYTES / 2**30:.1f} GiB per GPU worker beyond its data)"
        )
    print("nvidia-smi:\n" + smi())
    return env


# -- sections -----------------------------------------------------------------------------------------
FAST = ("--epochs", "1", "--train-size", "4096", "--val-size", "1024", "--test-size", "512")


def scaling(bench: Bench, gpu: str) -> Path | None:
    rows, first_store = [], None
    for per in [int(x) for x in bench.args.per_device.split(",")]:
        if bench.left() < 180:  # the later sections need about 3 minutes
            print(f"scaling: {per} workers/GPU skipped (time budget)")
            bench.skipped.append(f"scaling {per}/GPU")
            continue
        s = bench.store(f"scale{per}", bench.args.models)
        first_store = first_store or s
        run = bench.train(f"scaling {per}/GPU", s, "--devices", "0", "--workers-per-device", per, util=gpu)
        r = run["results"]
        rows.append((per, run["models_per_hour"], bench.args.models / run["wall"] * 3600, run["util"],
                     r.peak_reserved_mb.median() if len(r) else float("nan"),
                     r.peak_reserved_mb.max() if len(r) else float("nan"), run["wall"]))  # fmt: skip
    if rows:
        base = rows[0][1] or float("nan")
        print(f"{'workers/GPU':>11} {'models/h':>9} {'vs first':>8} {'wall models/h':>13} {'GPU util %':>10} "
              f"{'reserved MiB med':>16} {'max':>7} {'wall s':>7}")  # fmt: skip
        for per, mph, wall_mph, util, med, mx, wall in rows:
            print(
                f"{per:11d} {mph or float('nan'):9.0f} {(mph or float('nan')) / base:7.2f}x {wall_mph:13.0f} "
                f"{util if util is not None else float('nan'):10.0f} {med:16.0f} {mx:7.0f} {wall:7.0f}"
            )
    return first_store


def measured_planning(bench: Bench, store: Path):
    """Larger models added to a store holding GPU results: plan by measured ratio vs by estimate."""
    from regspace.data import prepare
    from regspace.store import Store
    from regspace.train.devices import gpu_model_bytes, measured_scale
    from regspace.train.recipe import get_recipe
    from regspace.train.runner import gpu_measurements

    for space in ("X_c", "RegNetX"):
        bench.regspace("sample", "--store", store, "--space", space, "-n", 3, "--preset", "mnist",
                       "--flops", "20M:40M", "--seed", 1)  # fmt: skip
    recipe = get_recipe("quick")
    st = Store.open(store)
    measured = gpu_measurements(st, recipe.hash)
    os.environ.update({k: bench.env[k] for k in ("REGSPACE_CACHE", "REGSPACE_DATA") if k in bench.env})
    data = prepare(recipe.dataset, resolution=28, progress=False, say=lambda m: None).resident_bytes
    scale = measured_scale(measured, data, recipe.batch_size)
    pending = st.pending(recipe.hash, ["model_id", "acts", "params"])
    plans = {m["model_id"]: gpu_model_bytes(m["acts"], m["params"], data, recipe.batch_size, scale or 1.0)
             for m in pending}  # fmt: skip
    est = max(gpu_model_bytes(m["acts"], m["params"], data, recipe.batch_size) for m in pending)
    if scale is None:
        bench.problems.append("measured planning: the store holds no GPU result with a memory peak")
        return
    print(f"measured/estimated ratio (with margin) {scale:.3f} from {len(measured)} GPU results; largest pending "
          f"model planned {max(plans.values()) / 2**20:.0f} MiB (estimate alone {est / 2**20:.0f} MiB)")  # fmt: skip
    run = bench.train("measured planning", store, "--devices", "0")
    r = run["results"].drop_duplicates("model_id", keep="last").set_index("model_id")
    ratios = [plans[m] / (r.loc[m, "peak_reserved_mb"] * 2**20) for m in plans if m in r.index
              and r.loc[m, "peak_reserved_mb"] > 0]  # fmt: skip
    if ratios:
        print(
            f"plan / measured reserved peak over the {len(ratios)} new models: min {min(ratios):.2f}, "
            f"median {statistics.median(ratios):.2f} (plan includes the CUDA context); workers {run['workers']}"
        )
        if min(ratios) < 1:
            bench.problems.append(f"measured planning: a model took more than planned ({min(ratios):.2f})")


def cifar_recipe(bench: Bench):
    s = bench.store("cifar", 8)
    from regspace.data.sources import get_source, locate
    from regspace.errors import RegspaceError

    try:  # CIFAR-10 only where its files are here: no download
        os.environ.update({k: bench.env[k] for k in ("REGSPACE_CACHE", "REGSPACE_DATA") if k in bench.env})
        locate(get_source("cifar10"), download=False)
        data = "cifar10"
    except RegspaceError:
        data = "fashion-mnist"
    # 5 epochs: the recipe's own warm-up length; 5 × 5 steps of 1,024 images
    args = ("--recipe", "cifar", "--data", data, "--epochs", "5", "--train-size", "5120", "--val-size", "1024",
            "--test-size", "1024", "--devices", "0")  # fmt: skip
    if data == "cifar10":
        args += ("--resolution", "28")  # the mnist-preset models' resolution
    run = bench.train("cifar recipe", s, *args)
    print(
        f"cifar recipe (flip+crop, label smoothing, batch 1024) on {data}: {run['models_per_hour'] or 0:.0f} "
        f"models/h, {run['workers']} workers, {len(run['results'])} results"
    )


def mapped(bench: Bench):
    s = bench.store("mapped", 8)
    run = bench.train("mapped", s, *FAST, "--map-above", "0", "--devices", "0")
    layouts = sorted(set(run["results"].data_layout)) if len(run["results"]) else []
    print(f"mapped path: layouts {layouts}, {run['models_per_hour'] or 0:.0f} models/h, {run['workers']} workers")
    if layouts != ["mapped"]:
        bench.problems.append(f"mapped: data_layout {layouts}, not mapped")


def recycling(bench: Bench):
    from regspace.store import Store

    s = bench.store("recycle", 26)  # a network drawn twice is one model: 26 draws give at least 24 here
    want = len(Store.open(s).model_ids())
    run = bench.train("recycling", s, *FAST, "--recycle", "4", "--devices", "0", "--workers-per-device", "2")
    n = run["results"].model_id.nunique() if len(run["results"]) else 0
    print(f"recycling every 4 models: {n} of {want} models have a result, {run['models_per_hour'] or 0:.0f} models/h")
    if n != want:
        bench.problems.append(f"recycling: {n} results for {want} models")


HOG = r"""
import sys, time, torch
free, total = torch.cuda.mem_get_info(0)
x = torch.empty(int(0.8 * total), dtype=torch.uint8, device="cuda")
print(x.numel(), flush=True)
time.sleep(float(sys.argv[1]))
"""


def neighbour(bench: Bench):
    hog = subprocess.Popen([sys.executable, "-c", HOG, str(max(60, bench.left()))], stdout=subprocess.PIPE,
                           text=True, env=bench.env)  # fmt: skip
    try:
        held = hog.stdout.readline().strip()
        if not held.isdigit():
            bench.problems.append("neighbour: the process holding 80 % of the GPU did not start")
            return
        s = bench.store("neighbour", 8)
        run = bench.train("neighbour 80%", s, *FAST, "--devices", "0")
        r = run["results"]
        failed = r[r.status == "failed"] if len(r) else r
        oom = sum("out of memory" in str(x).lower() for x in failed.reason) if len(failed) else 0
        retries = oom_retries(run["out"])
        print(
            f"beside a process holding {int(held) / 2**30:.0f} GiB (80 %): {run['workers']} workers, "
            f"{len(r)} results, {len(failed)} failed ({oom} out of memory), OOM retries "
            f"{retries if retries is not None else 'not counted by the summary line'}"
        )
    finally:
        hog.kill()
        hog.wait()


FP16_LR = 1e8  # one SGD step this large puts weights past fp16's 65,504: the next loss is not finite


def judge_fp16(r) -> list[str]:
    """Problems in the fp16 divergence section's results (a DataFrame of the store's results rows): every
    model must be recorded ``diverged`` (not ``failed``: a non-finite loss is the model's outcome, issue 23
    fault 1), trained in 16-mixed, with the step that saw it; a model ``ok`` at this lr is reported too."""
    if not len(r):
        return ["fp16 divergence: no result recorded"]
    problems = []
    for _, row in r.iterrows():
        if row.status == "ok":
            problems.append(f"fp16 divergence: {row.model_id} ok at lr {FP16_LR:g}: no divergence was seen")
        elif row.status != "diverged":
            problems.append(f"fp16 divergence: {row.model_id} {row.status} at lr {FP16_LR:g}: {row.reason}")
        elif "loss became" not in str(row.reason):
            problems.append(f"fp16 divergence: {row.model_id} diverged without the step: {row.reason}")
        if row.precision != "16-mixed":
            problems.append(f"fp16 divergence: {row.model_id} trained in {row.precision}, not 16-mixed")
    return problems


def fp16_divergence(bench: Bench):
    """The diverged path under fp16 with loss scaling, which the CPU cannot run (Lightning substitutes bf16
    there): a learning rate no model survives must leave every model ``diverged``, none ``failed``, and
    the run must go on to the end. Kept out of bench.results: its precision is forced, not chosen."""
    s = bench.store("fp16", 4)
    p = bench.regspace("train", "--store", s, *FAST, "--precision", "16-mixed", "--lr", f"{FP16_LR:g}",
                       "--devices", "0", check=False)  # fmt: skip
    import pandas as pd

    r = pd.read_parquet(s / "results") if (s / "results").exists() else pd.DataFrame()
    if p.returncode != 0:
        bench.problems.append(f"fp16 divergence: regspace train exited {p.returncode}: {p.stderr.strip()[-300:]}")
    found = judge_fp16(r)
    bench.problems += found
    statuses = r.status.value_counts().to_dict() if len(r) else {}
    print(f"fp16 at lr {FP16_LR:g}: {statuses}; {'as expected' if not found else f'{len(found)} problem(s)'}")
    if len(r):
        print(f"  first reason: {r.reason.iloc[0]}")


def second_gpu(bench: Bench, env: dict):
    if len(env["gpus"]) < 2:
        print("second GPU: none here; skipped")
        return
    s = bench.store("two", 8)
    run = bench.train("two GPUs", s, *FAST, "--devices", "0,1", "--workers-per-device", "1")
    used = sorted(set(run["results"].device.str.extract(r"(cuda:\d+)")[0])) if len(run["results"]) else []
    print(f"two GPUs: models on {used}, {run['models_per_hour'] or 0:.0f} models/h")
    if used != ["cuda:0", "cuda:1"]:
        bench.problems.append(f"two GPUs: models ran on {used}")


def check_precision(bench: Bench, env: dict):
    caps = {g["index"]: tuple(g["capability"]) for g in env["gpus"]}
    n = 0
    for section, r in bench.results:
        if not len(r):
            continue
        for _, row in r[r.status == "ok"].iterrows():
            m = re.match(r"cuda:(\d+)", str(row.device))
            if not m or row.device_kind != "cuda":
                bench.problems.append(f"{section}: {row.model_id} ran on {row.device}, not a GPU")
                continue
            want = expected_precision(caps[int(m.group(1))])
            n += 1
            if row.precision != want:
                bench.problems.append(f"{section}: {row.model_id} trained in {row.precision}, not {want}")
    print(f"precision checked on {n} results: auto gives bf16-mixed from sm80, 16-mixed below")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=12)
    ap.add_argument("--per-device", default="1,2,4")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds; sections that would pass it are skipped")
    ap.add_argument("--cache", help="regspace's dataset cache ($REGSPACE_CACHE; default: a temporary one)")
    ap.add_argument("--data-dir", help="where the raw dataset files are ($REGSPACE_DATA)")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print(f"bench_gpu: no CUDA GPU here (torch {torch.__version__}, CUDA {torch.version.cuda}); nothing measured")
        return 0
    with tempfile.TemporaryDirectory() as d:
        bench = Bench(args, Path(d))
        env = environment(bench)
        gpu = smi_id(0, os.environ.get("CUDA_VISIBLE_DEVICES"), env["gpus"][0]["uuid"])
        print(f"torch's GPU 0 is nvidia-smi's {gpu}")
        # (name, what it runs, seconds it is expected to take: a section is skipped when less is left)
        sections = [
            ("scaling", lambda: scaling(bench, gpu), 60),
            ("measured planning", None, 35),
            ("fp16 divergence", lambda: fp16_divergence(bench), 20),
            ("neighbour", lambda: neighbour(bench), 35),
            ("cifar recipe", lambda: cifar_recipe(bench), 30),
            ("mapped", lambda: mapped(bench), 30),
            ("recycling", lambda: recycling(bench), 45),
            ("second GPU", lambda: second_gpu(bench, env), 30),
        ]
        first_store = None
        for name, run, expected in sections:
            if bench.left() < expected:
                print(f"== {name}: skipped ({bench.left():.0f} s of the {args.budget:.0f} s budget left)")
                bench.skipped.append(name)
                continue
            print(f"== {name} ({time.monotonic() - bench.t0:.0f} s in)", flush=True)
            try:
                if name == "scaling":
                    first_store = run()
                elif name == "measured planning":
                    if first_store is None:
                        print("no store with GPU results; skipped")
                    else:
                        measured_planning(bench, first_store)
                else:
                    run()
            except Exception as e:  # noqa: BLE001 - one section's failure is reported, the others still run
                bench.problems.append(f"{name}: {type(e).__name__}: {str(e)[:300]}")
        check_precision(bench, env)
        skipped = f"; skipped for time: {', '.join(bench.skipped)} (--budget)" if bench.skipped else ""
        print(f"total {time.monotonic() - bench.t0:.0f} s{skipped}")
        if bench.problems:
            print(f"{len(bench.problems)} problem(s):")
            for p in bench.problems:
                print(f"  - {p}")
            return 1
        print("no problem found")
        return 0


if __name__ == "__main__":
    sys.exit(main())
