"""The `regspace` command: a thin face over library functions.

Only typer is imported at start-up; each command imports what it needs, and commands that do not
train never import torch or lightning.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from regspace import __version__, defaults
from regspace.errors import RegspaceError

app = typer.Typer(
    name="regspace",
    help="Sample, train and compare network design spaces (AnyNet X_a→X_e, RegNetX/Y) by their error EDFs.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

StoreOpt = Annotated[
    str,
    typer.Option("--store", envvar="REGSPACE_STORE", help="Store directory (parquet tables).", show_default=True),
]
DEFAULT_STORE = defaults.STORE
QueueOpt = Annotated[
    Optional[str],
    typer.Option(
        "--queue",
        envvar="REGSPACE_QUEUE",
        help="Sweep across machines: postgresql://…, sqlite:///file (one worker) or journal:///path.log.",
    ),
]
SweepOpt = Annotated[str, typer.Option("--sweep", help="Name of the sweep in the queue (one Optuna study each).")]
SkipUnreadableOpt = Annotated[
    bool,
    typer.Option(
        "--skip-unreadable",
        help="Train even when a part file of the store cannot be read (its models may be trained again).",
    ),
]
HeartbeatOpt = Annotated[
    int, typer.Option("--heartbeat", min=1, max=3600, help="Queue: seconds between a training model's heartbeats.")
]
GraceOpt = Annotated[
    int,
    typer.Option(
        "--grace", min=1, max=86400, help="Queue: seconds without heartbeat before a model is given to another worker."
    ),
]


SpacesOpt = Annotated[
    Optional[str], typer.Option("--spaces", help="Spaces to compare, comma-separated (default: all in the store).")
]
RecipeHashOpt = Annotated[
    Optional[str], typer.Option("--recipe-hash", help="Results of this recipe (default: the one with most results).")
]
OutOpt = Annotated[str, typer.Option("-o", "--output", help="Output file: .png, .svg or .pdf.")]
ErrorOpt = Annotated[
    str, typer.Option("--error", help="Sweep error: error (final validation) or min_error (best epoch).")
]
EpochOpt = Annotated[
    Optional[int],
    typer.Option("--epoch", min=1, max=100_000, help="The errors as they stood after this epoch (stored curves)."),
]
DrawsOpt = Annotated[
    Optional[int],
    typer.Option("--draws", min=1, help="Each space's first N draws only (equal n, e.g. a study stopped part-way)."),
]


# -- the read commands' options: declared once ---------------------------------------------------
# Each read command takes some of these, always last and in this order; `@reads(...)` adds them to
# its signature and hands the command one `Source` instead.
READ_OPTIONS: dict[str, tuple[object, object]] = {
    "recipe_hash": (RecipeHashOpt, None),
    "error": (ErrorOpt, "error"),
    "epoch": (EpochOpt, None),
    "first_draws": (DrawsOpt, None),
    "store": (StoreOpt, DEFAULT_STORE),
    "queue": (QueueOpt, None),
    "sweep": (SweepOpt, "default"),
}


@dataclass(frozen=True)
class Source:
    """What a read command reads: the store (with --queue's sweep collected into it first), and which
    results: the recipe, the sweep error, the epoch, each space's first draws."""

    store: str = DEFAULT_STORE
    queue: str | None = None
    sweep: str = "default"
    recipe_hash: str | None = None
    error: str = "error"
    epoch: int | None = None
    first_draws: int | None = None

    def collect(self, *, summary: bool = False, to_stdout: bool = False):
        return _collect(self.queue, self.sweep, self.store, summary=summary, to_stdout=to_stdout)

    def open(self):
        """The store, after collecting the sweep (if any) into it."""
        from regspace.store import Store

        self.collect()
        return Store.open(self.store)

    def table(self, spaces: str | None, *, light: bool = False, columns: list[str] | None = None):
        """The analysis table (``light``: only the columns EDFs need, for speed on big stores; ``columns``:
        these model columns)."""
        from regspace.analysis_io import ANALYSIS_MODEL_COLUMNS, load_table
        from regspace.spaces import resolve_names

        return load_table(
            self.open(),
            spaces=resolve_names(spaces),
            recipe_hash=self.recipe_hash,
            error=self.error,
            model_columns=columns or (ANALYSIS_MODEL_COLUMNS if light else None),
            epoch=self.epoch,
            first_draws=self.first_draws,
        )


def reads(*names: str):
    """Give a command the read options ``names`` (keys of READ_OPTIONS), after its own options and in
    READ_OPTIONS's order; the command receives them as one ``src: Source`` keyword."""
    unknown = set(names) - set(READ_OPTIONS)
    if unknown:
        raise ValueError(f"unknown read options {sorted(unknown)}")
    chosen = [n for n in READ_OPTIONS if n in names]

    def decorate(func):
        sig = inspect.signature(func, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "src"]
        shared = [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=READ_OPTIONS[n][1],
                              annotation=READ_OPTIONS[n][0])
            for n in chosen
        ]  # fmt: skip

        @functools.wraps(func)
        def command(*args, **kwargs):
            src = Source(**{n: kwargs.pop(n) for n in chosen})
            return func(*args, src=src, **kwargs)

        command.__signature__ = sig.replace(parameters=[*own, *shared])
        command.__annotations__ = {p.name: p.annotation for p in [*own, *shared]}
        return command

    return decorate


def _version(value: bool):
    if value:
        print(f"regspace {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
):
    pass


PresetOpt = Annotated[
    str, typer.Option("--preset", help="imagenet | cifar | mnist: stem, input size and default budget.")
]
StemOpt = Annotated[Optional[str], typer.Option("--stem", help="Override the preset's stem: imagenet | cifar.")]
ResolutionOpt = Annotated[
    Optional[int], typer.Option("--resolution", min=1, max=4096, help="Input size in pixels (square).")
]
InChannelsOpt = Annotated[Optional[int], typer.Option("--in-channels", min=1, max=64, help="Input channels.")]
ClassesOpt = Annotated[Optional[int], typer.Option("--classes", min=1, max=1_000_000, help="Number of output classes.")]
DataDirOpt = Annotated[Optional[str], typer.Option("--data-dir", help="Directory holding the dataset's files.")]
MapAboveOpt = Annotated[
    Optional[str],
    typer.Option(
        "--map-above",
        help="Memory-map datasets whose decoded images exceed this size (e.g. 2G; 0: always; inf: never). "
        "Default: a prepared map if one exists, else 2G.",
    ),
]


@app.command("spaces")
def spaces_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
):
    """List the design spaces, their parameters and ranges."""
    from regspace.spaces import list_spaces

    rows = []
    for s in list_spaces():
        params = "; ".join(f"{n}: {d}" for n, d in s.parameter_rows())
        rows.append(
            {
                "space": s.name,
                "aliases": list(s.aliases),
                "block": s.block,
                "dof": s.dof,
                "constraints": s.constraints(),
                "parameters": dict(s.parameter_rows()),
                "description": s.description,
                "_params": params,
            }
        )
    if json_out:
        import json

        print(json.dumps([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows], indent=2))
        return
    from regspace.text import print_table

    print_table(
        ["space", "block", "dof", "constraints", "parameters"],
        [[r["space"], r["block"], r["dof"], ", ".join(r["constraints"]) or "-", r["_params"]] for r in rows],
        numeric={"dof"},
    )


@app.command("describe")
def describe_cmd(
    designs: Annotated[
        list[str],
        typer.Argument(
            help="Reference names (RegNetX-200MF …), regnet:d=..,w0=..,wa=..,wm=..,g=.. or anynet:d=..;w=..;b=..;g=.."
        ),
    ],
    preset: PresetOpt = "imagenet",
    stem: StemOpt = None,
    resolution: ResolutionOpt = None,
    in_channels: InChannelsOpt = None,
    classes: ClassesOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table | json | pycls: the reference code's own config (YAML; MODEL.TYPE anynet, regnet or "
            "effnet), so that pycls builds the same network.",
        ),
    ] = "table",
):
    """Stage widths, depths, groups and exact complexity of designs (default context: ImageNet, as the zoo)."""
    from regspace.console import say
    from regspace.presets import resolve_context
    from regspace.specs import describe

    if fmt not in ("table", "json", "pycls"):
        from regspace.errors import UsageProblem

        raise UsageProblem(f"unknown --format {fmt!r}: choose table, json or pycls")
    json_out = json_out or fmt == "json"
    _, stem_, context = resolve_context(preset, stem, resolution, in_channels, classes)
    if fmt == "pycls":
        from regspace.specs import describe_pycls

        print(describe_pycls(designs, stem=stem_, context=context), end="")
        return
    problems: list = []
    rows = describe(designs, stem=stem_, context=context, problems=problems)
    if len(designs) == 1 and problems:  # one design: its error is the answer, as for every command
        raise problems[0][1]
    for spec, problem in problems:  # several: the readable ones are still described (issue 25 §4)
        say(f"regspace: error: {spec}: {problem}")
    if json_out:
        import json

        print(json.dumps(rows, indent=2))
        if problems:
            raise typer.Exit(2)
        return
    if not rows:
        raise typer.Exit(2)
    from regspace.text import print_table
    from regspace.units import format_quantity

    def lst(x):
        return ",".join(format(v, "g") for v in x)

    # strides, kernels, expansions, stem, head, activation: a column only when a design sets one
    extra = any(r["details"] for r in rows)
    print_table(
        ["design", "widths", "depths", "group w", "b", "block", *(["details"] if extra else []), "flops", "params"]
        + ["acts", "model_id"],
        [
            [
                r["name"],
                lst(r["stage_widths"]),
                lst(r["stage_depths"]),
                lst(r["stage_group_widths"]),
                lst(r["stage_bottleneck_ratios"]),
                r["block"],
                *([r["details"] or "-"] if extra else []),
                f"{r['flops']:,} ({format_quantity(r['flops'])})",
                f"{r['params']:,}",
                f"{r['acts']:,}",
                r["model_id"],
            ]
            for r in rows
        ],
        title=f"stem {stem_.name}, {context.resolution}×{context.resolution}×{context.in_channels}, "
        f"{context.num_classes} classes",
        numeric={"flops", "params", "acts"},
    )
    from regspace.reference import REFERENCES

    for r in rows:  # a reference model published at another resolution than this table's
        ref = REFERENCES.get(r["name"])
        if ref is not None and ref.resolution != context.resolution and resolution is None:
            say(f"note: {r['name']} is trained and published at {ref.resolution}×{ref.resolution}; "
                f"add --resolution {ref.resolution} for its published figures")  # fmt: skip
    if problems:
        raise typer.Exit(2)


@app.command("sample")
def sample_cmd(
    space: Annotated[
        str, typer.Option("--space", help="X_a … X_e, Y_a … Y_e, RegNet, RegNetX, RegNetY, or a .toml space file.")
    ],
    n: Annotated[
        int,
        typer.Option(
            "-n",
            "--num",
            min=1,
            max=10_000_000,
            help="How many models to draw (i.i.d.: a network drawn twice counts twice, trains once).",
        ),
    ] = 100,
    total: Annotated[
        Optional[int],
        typer.Option(
            "--total",
            min=1,
            max=10_000_000,
            help="Instead of -n: sample until the space holds this many draws (idempotent, for scripts).",
        ),
    ] = None,
    flops: Annotated[
        Optional[str], typer.Option("--flops", help="Flops (multiply-adds) range, e.g. 360M:400M, :2M; ':' for none.")
    ] = None,
    params: Annotated[Optional[str], typer.Option("--params", help="Parameter-count range, e.g. 1M:5M.")] = None,
    acts: Annotated[Optional[str], typer.Option("--acts", help="Activations range, e.g. :3M.")] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", min=0, max=2**63 - 1, help="Sampling seed (the stream continues past models already stored)."
        ),
    ] = 0,
    preset: PresetOpt = "cifar",
    stem: StemOpt = None,
    resolution: ResolutionOpt = None,
    in_channels: InChannelsOpt = None,
    classes: ClassesOpt = None,
    max_candidates: Annotated[
        int, typer.Option("--max-candidates", min=1, help="Give up after drawing this many candidates.")
    ] = 20_000_000,
    store: StoreOpt = DEFAULT_STORE,
    queue: QueueOpt = None,
    sweep: SweepOpt = "default",
):
    """Sample new models from a design space under a complexity budget into the store (and --queue)."""
    from regspace.populate import sample_command

    lines = sample_command(
        store,
        space,
        n,
        total=total,
        flops=flops,
        params=params,
        acts=acts,
        seed=seed,
        preset=preset,
        stem=stem,
        resolution=resolution,
        in_channels=in_channels,
        classes=classes,
        max_candidates=max_candidates,
        queue=queue,
        sweep=sweep,
    )
    print("\n".join(lines))


@app.command("train")
def train_cmd(
    space: Annotated[Optional[str], typer.Option("--space", help="Only these spaces (comma-separated).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Train at most this many models.")] = None,
    recipe: Annotated[
        Optional[str], typer.Option("--recipe", help="Recipe preset: quick (default) | dds | cifar.")
    ] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, max=10_000, help="Override: epochs.")] = None,
    batch_size: Annotated[
        Optional[int], typer.Option("--batch-size", min=1, max=1 << 20, help="Override: images per step.")
    ] = None,
    lr: Annotated[
        Optional[float],
        typer.Option("--lr", min=0, help="Override: learning rate at the recipe's lr_batch (scaled linearly)."),
    ] = None,
    weight_decay: Annotated[Optional[float], typer.Option("--wd", min=0, help="Override: weight decay.")] = None,
    augment: Annotated[
        Optional[str], typer.Option("--augment", help="Override: none | flip | crop | flip+crop.")
    ] = None,
    precision: Annotated[
        Optional[str], typer.Option("--precision", help="Override: auto | bf16-mixed | 32-true | 16-mixed.")
    ] = None,
    data: Annotated[
        Optional[str],
        typer.Option("--data", help="fashion-mnist | mnist | cifar10 | imagefolder:PATH (default: the recipe's)."),
    ] = None,
    data_dir: DataDirOpt = None,
    map_above: MapAboveOpt = None,
    train_size: Annotated[
        Optional[int], typer.Option("--train-size", min=1, help="Training images (proxy regimes).")
    ] = None,
    val_size: Annotated[
        Optional[int], typer.Option("--val-size", min=1, help="Validation images carved from the training set.")
    ] = None,
    test_size: Annotated[
        Optional[int], typer.Option("--test-size", min=0, help="Test images to evaluate (0: none).")
    ] = None,
    resolution: Annotated[
        Optional[int],
        typer.Option("--resolution", min=4, max=4096, help="Resize the data to this size (default: the models')."),
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option(
            "--workers", min=1, max=256, help="Worker processes (default: from cores, memory and model size)."
        ),
    ] = None,
    workers_per_device: Annotated[
        Optional[int],
        typer.Option(
            "--workers-per-device",
            min=1,
            max=64,
            help="GPUs: workers per GPU (default: as many as its free memory holds, 2-8 for small models).",
        ),
    ] = None,
    threads: Annotated[
        Optional[int],
        typer.Option(
            "--threads",
            min=1,
            max=1024,
            help="Threads per worker (default: cores / workers, capped by $OMP_NUM_THREADS).",
        ),
    ] = None,
    devices: Annotated[
        Optional[str],
        typer.Option("--devices", help="auto (every GPU; the CPU if no NVIDIA driver) | cpu | GPU indices: 0 or 0,1."),
    ] = None,
    seed: Annotated[
        Optional[int], typer.Option("--seed", min=0, max=2**31 - 1, help="Training seed (init and data order).")
    ] = None,
    seeds: Annotated[
        Optional[str],
        typer.Option("--seeds", help="Train each model once per seed, e.g. 0,1,2 (analyses average a design's seeds)."),
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Train again models whose earlier attempt failed.")
    ] = False,
    skip_unreadable: SkipUnreadableOpt = False,
    recycle: Annotated[
        int,
        typer.Option(
            "--recycle",
            min=1,
            max=1_000_000,
            help="Replace each worker process after this many models (bounds memory).",
        ),
    ] = defaults.RECYCLE,
    store: StoreOpt = DEFAULT_STORE,
    queue: QueueOpt = None,
    sweep: SweepOpt = "default",
    heartbeat: HeartbeatOpt = defaults.HEARTBEAT_SECONDS,
    grace: GraceOpt = defaults.GRACE_SECONDS,
):
    """Train every model of the store (or of the --queue sweep) that has no result for the recipe."""
    from regspace.train.recipe import get_recipe

    overrides = dict(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        augment=augment,
        precision=precision,
        train_size=train_size,
        val_size=val_size,
        test_size=test_size,
        resolution=resolution,
        seed=seed,
        dataset=data,
    )
    from regspace.data import parse_map_above
    from regspace.train.recipe import parse_seeds
    from regspace.train.runner import Parallelism, run_seeds

    if seeds is not None and seed is not None:
        raise typer.BadParameter("give --seed or --seeds, not both", param_hint="--seeds")
    base = get_recipe(recipe or "quick").replace(**overrides)
    summaries = run_seeds(
        store,
        base,
        parse_seeds(seeds) if seeds is not None else [base.seed],
        explicit_recipe=recipe is not None or seeds is not None or any(v is not None for v in overrides.values()),
        queue=queue,
        sweep=sweep,
        spaces=space,
        limit=limit,
        retry_failed=retry_failed,
        skip_unreadable=skip_unreadable,
        parallelism=Parallelism(workers, workers_per_device, threads, devices, recycle),
        data_dir=data_dir,
        map_above=parse_map_above(map_above),
        heartbeat=heartbeat,
        grace=grace,
    )
    for summary in summaries:
        if summary.interrupted:
            print(summary.outcome(), file=sys.stderr)
            raise typer.Exit(130)
        print(summary.outcome())


@app.command("status")
@reads("store", "queue", "sweep")
def status_cmd(
    recipe: Annotated[
        Optional[str], typer.Option("--recipe-hash", help="Only count results of this recipe hash.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Read every part file in full, checking checksums; exit 1 if one is damaged."),
    ] = False,
    *,
    src: Source,
):
    """Per space: models sampled, trained, diverged, failed and pending (with --queue: the sweep's state too)."""
    from regspace.status import store_status
    from regspace.store import Store

    if verify:
        parts, bad = Store.open(src.store).verify()
        for path, reason in bad:
            print(f"damaged: {path} ({reason})")
        print(f"verified {parts} part file(s) of {src.store}: " + (f"{len(bad)} damaged" if bad else "all readable"))
        if bad:
            raise typer.Exit(1)
        return

    queue_rows = src.collect(summary=True)
    rows = store_status(Store.open(src.store), recipe_hash=recipe)
    if queue_rows is not None and not json_out:
        from regspace.sweep.backends import redact
        from regspace.text import sweep_table

        sweep_table(queue_rows, sweep=src.sweep, where=redact(src.queue)).print()
    if json_out and queue_rows is not None:
        import json

        print(json.dumps({"store": rows, "queue": queue_rows}, indent=2))
        return
    if json_out:
        import json

        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"store {src.store} holds no models yet; run `regspace sample --space X_c -n 100`")
        return
    from regspace.text import status_table

    status_table(rows).print()


def _collect(queue: str | None, sweep: str, store: str, *, summary: bool = False, to_stdout: bool = False):
    """Bring a sweep's models and results into the local store (read commands given --queue do this first).

    The count line goes to stderr (stdout stays the command's data) unless ``to_stdout``; with
    ``summary`` the sweep's per-space state is returned.
    """
    if not queue:
        return None
    from regspace.console import say
    from regspace.store import Store
    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import collect

    q = open_study(queue, sweep, create=False)
    models, results = collect(q, Store.create(store))
    line = f"collected {models} new model(s) and {results} new result(s) from sweep {sweep!r} into {store}"
    if to_stdout:
        print(line)
    else:
        say(line)
    return q.summary() if summary else None


@app.command("collect")
def collect_cmd(
    queue: Annotated[str, typer.Option("--queue", envvar="REGSPACE_QUEUE", help="The sweep's queue URL.")],
    sweep: SweepOpt = "default",
    store: StoreOpt = DEFAULT_STORE,
):
    """Copy a sweep's models and results from the queue into a local store (one result per model and recipe)."""
    if not queue.strip():
        raise typer.BadParameter("give the sweep's queue URL", param_hint="--queue")
    _collect(queue, sweep, store, to_stdout=True)


def _space_name(space: str) -> str:
    from regspace.spaces import resolve_names

    names = resolve_names(space)
    if len(names) != 1:
        raise typer.BadParameter("give one space name", param_hint="--space")
    return names[0]


def _check_normalize(normalize: str | None) -> None:
    if normalize not in (None, "flops", "params", "acts"):
        raise typer.BadParameter("use flops, params or acts", param_hint="--normalize")


def _saved(path) -> None:
    print(f"wrote {path}")


@app.command("plot-edf")
@reads("recipe_hash", "error", "epoch", "first_draws", "store", "queue", "sweep")
def plot_edf_cmd(
    spaces: SpacesOpt = None,
    normalize: Annotated[
        Optional[str],
        typer.Option(
            "--normalize", help="Weight models to flatten complexity (NDS): params (as most NDS figures) | flops."
        ),
    ] = None,
    band: Annotated[
        Optional[str],
        typer.Option(
            "--band",
            help="Draw 95% bands: pointwise (bootstrap at each error; --band alone) | simultaneous (the whole "
            "curve at once: DKW, or a bootstrap sup-norm band with --normalize).",
        ),
    ] = None,
    bins: Annotated[int, typer.Option("--bins", min=1, max=1000, help="Complexity bins for --normalize.")] = 10,
    output: OutOpt = "edf.png",
    *,
    src: Source,
):
    """Error EDFs of design spaces, side by side (legend: space (n | min | mean))."""
    _check_normalize(normalize)
    if band not in (None, "pointwise", "simultaneous"):
        raise typer.BadParameter(f"use {' or '.join(BAND_KINDS)}", param_hint="--band")
    from regspace.plots.figures import plot_edf
    from regspace.plots.style import save

    df = src.table(spaces, light=True)
    _saved(save(plot_edf(df, normalize=normalize, band=band or False, n_bins=bins), output))


@app.command("plot-scatter")
@reads("recipe_hash", "error", "store", "queue", "sweep")
def plot_scatter_cmd(
    space: Annotated[str, typer.Option("--space", help="The space whose models to plot.")],
    x: Annotated[
        Optional[str], typer.Option("--x", help="Parameters, comma-separated (e.g. d,w4,g,b,wa,wm,flops).")
    ] = None,
    n_boot: Annotated[
        int, typer.Option("--boot", min=10, max=1_000_000, help="Bootstrap repetitions for the good range.")
    ] = 2500,
    output: OutOpt = "scatter.png",
    *,
    src: Source,
):
    """Error against each parameter, with the empirical-bootstrap good range shaded."""
    from regspace.plots.figures import plot_scatter
    from regspace.plots.style import save

    name = _space_name(space)
    df = src.table(name)
    params = [p.strip() for p in x.split(",") if p.strip()] if x else None
    _saved(save(plot_scatter(df, space=name, params=params, n_boot=n_boot), output))


@app.command("plot-widths")
@reads("recipe_hash", "error", "store", "queue", "sweep")
def plot_widths_cmd(
    space: Annotated[str, typer.Option("--space", help="The space whose best models to draw.")],
    top: Annotated[int, typer.Option("--top", min=1, max=100, help="How many of the best models.")] = 8,
    output: OutOpt = "widths.png",
    *,
    src: Source,
):
    """Per-block widths of the best models (log2), with the RegNet or fitted line."""
    from regspace.plots.figures import plot_widths
    from regspace.plots.style import save

    name = _space_name(space)
    _saved(save(plot_widths(src.table(name), space=name, top=top), output))


@app.command("plot-fit")
@reads("recipe_hash", "error", "store", "queue", "sweep")
def plot_fit_cmd(
    spaces: SpacesOpt = None,
    space: Annotated[Optional[str], typer.Option("--space", help="One space (same as --spaces with one name).")] = None,
    output: OutOpt = "fit.png",
    *,
    src: Source,
):
    """Error against e_fit, the distance of each model's widths from a quantised linear fit."""
    from regspace.analysis.table import trained
    from regspace.analysis_io import store_fits
    from regspace.plots.figures import plot_fit
    from regspace.plots.style import save
    from regspace.store import Store

    df = src.table(space or spaces)
    fits = store_fits(Store.open(src.store), trained(df))  # the store's e_fit cache: each model fitted once
    _saved(save(plot_fit(df, fits=fits), output))


@app.command("plot-search")
@reads("recipe_hash", "error", "store", "queue", "sweep")
def plot_search_cmd(
    spaces: SpacesOpt = None,
    output: OutOpt = "search.png",
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="nds (the papers': k draws with replacement, mean ± 2 std, exact) | order (k distinct "
            "models, exact order statistics, median and 25-75%).",
        ),
    ] = "nds",
    normalize: Annotated[
        Optional[str], typer.Option("--normalize", help="nds: draw with NDS's normalised weights: params | flops.")
    ] = None,
    bins: Annotated[int, typer.Option("--bins", min=1, max=1000, help="Complexity bins for --normalize.")] = 10,
    *,
    src: Source,
):
    """Random-search efficiency: the best error of k random models per space."""
    _check_normalize(normalize)
    from regspace.plots.figures import plot_search
    from regspace.plots.style import save

    df = src.table(spaces, light=True)
    _saved(save(plot_search(df, method=method, normalize=normalize, n_bins=bins), output))


@app.command("plot-curves")
@reads("recipe_hash", "first_draws", "store", "queue", "sweep")
def plot_curves_cmd(
    spaces: SpacesOpt = None,
    output: OutOpt = "curves.png",
    *,
    src: Source,
):
    """Learning curves per space: validation error by epoch of the best, median and worst model."""
    from regspace.plots.figures import plot_curves
    from regspace.plots.style import save

    df = src.table(spaces)
    _saved(save(plot_curves(df), output))


@app.command("compare")
@reads("recipe_hash", "error", "epoch", "first_draws", "store", "queue", "sweep")
def compare_cmd(
    spaces: SpacesOpt = None,
    normalize: Annotated[
        Optional[str],
        typer.Option("--normalize", help="Complexity-normalised (NDS): params (as most NDS figures) | flops."),
    ] = None,
    bins: Annotated[
        int, typer.Option("--bins", min=1, max=1000, help="Complexity bins for --normalize (NDS: 5-40).")
    ] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    src: Source,
):
    """Per-space error statistics and pairwise KS distances (the numbers behind plot-edf)."""
    _check_normalize(normalize)
    from regspace.analysis_io import COMPARE_MODEL_COLUMNS, compare_store
    from regspace.store import Store
    from regspace.text import print_compare

    table = src.table(spaces, columns=COMPARE_MODEL_COLUMNS)  # the findings read the designs
    result = compare_store(Store.open(src.store), table, normalize=normalize, n_bins=bins)  # e_fit cached
    if json_out:
        import json

        print(json.dumps(result, indent=2))
        return
    print_compare(result)


@app.command("importance")
@reads("recipe_hash", "error", "first_draws", "store", "queue", "sweep")
def importance_cmd(
    spaces: SpacesOpt = None,
    method: Annotated[
        str, typer.Option("--method", help="auto (fanova with scikit-learn, else ped-anova) | fanova | ped-anova.")
    ] = "auto",
    n_boot: Annotated[int, typer.Option("--boot", min=0, max=10_000, help="Bootstrap resamples of the draws.")] = 50,
    n_perm: Annotated[int, typer.Option("--perm", min=19, max=10_000, help="Shuffles of the errors.")] = 49,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the resamples, shuffles and forest.")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    src: Source,
):
    """Which parameters matter: per space, each parameter's importance for the error (Optuna's fANOVA or
    PED-ANOVA), with bootstrap intervals and a permutation test."""
    from regspace.analysis.importance import importance_all, resolve_method
    from regspace.console import say
    from regspace.text import importance_notes, importance_tables

    method = resolve_method(method)  # a missing scikit-learn fails before the store is read
    result = importance_all(src.table(spaces), say=say, method=method, n_boot=n_boot, n_perm=n_perm, seed=seed)
    if json_out:
        import json

        print(json.dumps(result, indent=2))
        return
    for t in importance_tables(result):
        t.print()
    for line in importance_notes(result):
        print(line)


@app.command("report")
@reads("recipe_hash", "store", "queue", "sweep")
def report_cmd(
    output: Annotated[
        str, typer.Option("-o", "--output", help="report.html (self-contained) or report.md (+ images).")
    ] = "report.html",
    spaces: SpacesOpt = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="html | md (default: from the file name).")] = None,
    *,
    src: Source,
):
    """Everything in one page: store, recipe, EDFs, comparison, scatter grids, best models, widths, fit, search."""
    from regspace.report import build_report
    from regspace.spaces import resolve_names

    store = src.open()
    _saved(build_report(store, output, spaces=resolve_names(spaces), recipe_hash=src.recipe_hash, fmt=fmt,
                        store_arg=src.store))  # fmt: skip


@app.command("export-model")
def export_model_cmd(
    design: Annotated[str, typer.Argument(help="One design, in any form `regspace describe` reads.")],
    output: Annotated[str, typer.Option("-o", "--output", help="The program file (conventionally .pt2).")],
    preset: PresetOpt = "imagenet",
    stem: StemOpt = None,
    resolution: ResolutionOpt = None,
    in_channels: InChannelsOpt = None,
    classes: ClassesOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="torch.manual_seed before the weights are initialised.")] = 0,
):
    """Write a design as a torch.export program (torch.export.load(path).module() runs it; no regspace
    needed). Eval mode, input (N, C, H, W) with N free. The weights are the initialised ones (seeded by
    --seed): regspace keeps no trained weights, a training run stores its result, not a checkpoint."""
    from regspace.model_export import export_model
    from regspace.presets import resolve_context
    from regspace.specs import parse_design

    _, stem_, context = resolve_context(preset, stem, resolution, in_channels, classes)
    parsed, _ = parse_design(design, stem=stem_)
    r = export_model(parsed, context, output, seed=seed)
    c, h, w = r["input_shape"][1:]
    print(f"wrote {r['path']}: {r['params']:,} params, input (N, {c}, {h}, {w}), initialised weights (seed {seed}); "
          "load with torch.export.load(path).module()")  # fmt: skip


@app.command("export")
@reads("store", "queue", "sweep")
def export_cmd(
    output: Annotated[str, typer.Option("-o", "--output", help="Output file.")],
    fmt: Annotated[
        Optional[str], typer.Option("--format", help="csv | parquet | json (default: from the file name).")
    ] = None,
    *,
    src: Source,
):
    """One flat table of models joined with their results."""
    from regspace.export import export

    path, n = export(src.open(), output, fmt=fmt)
    print(f"wrote {n} rows to {path}")


@app.command("trends")
@reads("recipe_hash", "error", "first_draws", "store", "queue", "sweep")
def trends_cmd(
    space: Annotated[Optional[str], typer.Option("--space", help="Only this space (default: every space).")] = None,
    top: Annotated[float, typer.Option("--top", min=0.01, max=1.0, help="Share of each regime's best draws.")] = 0.2,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Also draw the trends of --space to this file.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    src: Source,
):
    """The best models' parameters across a study's flops regimes, with log-log slopes (DDS Fig. 11)."""
    from regspace.analysis.trends import regime_trends, sentences, table
    from regspace.text import bullets, print_table

    name = _space_name(space) if space else None
    result = regime_trends(src.table(None), top=top)
    result["spaces"] = [s for s in result["spaces"] if name is None or s["space"] == name]
    if json_out:
        import json

        print(json.dumps(result, indent=2))
    else:
        print_table(*table(result), title="best models across flops regimes")
        print(bullets(sentences(result)), end="")
    if plot:
        from regspace.plots.style import save
        from regspace.plots.trends import plot_trends

        _saved(save(plot_trends(result, space=name), plot))


@app.command("speed")
@reads("recipe_hash", "store", "queue", "sweep")
def speed_cmd(
    plot: Annotated[Optional[str], typer.Option("--plot", help="Also draw time against complexity here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    *,
    src: Source,
):
    """Inference time against flops, params and activations: Spearman with CIs (DDS Fig. 12)."""
    from regspace.analysis.speed import sentences, speed_correlations
    from regspace.text import bullets

    df = src.table(None)
    result = speed_correlations(df)
    if json_out:
        import json

        print(json.dumps(result, indent=2))
    else:
        print(bullets(sentences(result)) or "no trained model has a measured inference speed\n", end="")
    if plot:
        from regspace.plots.style import save
        from regspace.plots.trends import plot_speed

        _saved(save(plot_speed(df), plot))


data_app = typer.Typer(help="Datasets: prepare one once as memory-mapped shards (datasets larger than memory).")
app.add_typer(data_app, name="data")


@data_app.command("prepare")
def data_prepare_cmd(
    spec: Annotated[str, typer.Argument(help="imagefolder:PATH | fashion-mnist | mnist | cifar10.")],
    resolution: Annotated[
        Optional[int],
        typer.Option("--resolution", min=4, max=4096, help="Images are resized to this size (imagefolder: 32)."),
    ] = None,
    data_dir: DataDirOpt = None,
    map_above: Annotated[
        str,
        typer.Option("--map-above", help="Memory-map only above this decoded size (default 0: always; inf: never)."),
    ] = "0",
    workers: Annotated[
        Optional[int], typer.Option("--workers", min=1, max=1024, help="Decoding processes (default: one per core).")
    ] = None,
    shard_images: Annotated[
        Optional[int], typer.Option("--shard-images", min=1, help="Images per shard (default: 4096, at most 256 MB).")
    ] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Check every shard's sha256 against the manifest.")] = False,
):
    """Decode and resize a dataset once into memory-mapped uint8 shards; rerun to resume. `train --data` with the
    same dataset and resolution then reads from the map."""
    from regspace.console import stderr_is_terminal
    from regspace.data import parse_map_above, prepare_command

    print(
        prepare_command(
            spec,
            resolution=resolution,
            data_dir=data_dir,
            map_above=parse_map_above(map_above),
            workers=workers,
            shard_images=shard_images,
            verify=verify,
            progress=stderr_is_terminal(),
        )
    )


study_app = typer.Typer(help="Studies: a comparison of design spaces described by one TOML file, run by one command.")
app.add_typer(study_app, name="study")
StudyArg = Annotated[str, typer.Argument(help="The study file (TOML), e.g. experiments/ladder.toml.")]
StudyOutOpt = Annotated[
    Optional[str], typer.Option("--output", help="Write the study's store and report here instead of its `output`.")
]
WorkersOpt = Annotated[
    Optional[int],
    typer.Option("--workers", min=1, max=256, help="Worker processes (default: from cores, memory and model size)."),
]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, max=1024, help="Threads per worker.")]
DevicesOpt = Annotated[Optional[str], typer.Option("--devices", help="auto | cpu | GPU indices: 0 or 0,1.")]


def _interruptible(action):
    """Run ``action``; Ctrl-C or SIGTERM outside the training pool stops with one line and exit 130."""
    import signal

    from regspace.errors import Interrupted
    from regspace.train.pool import raise_interrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        return action()
    except KeyboardInterrupt:
        raise Interrupted("interrupted; what finished is kept (run the same command again to go on)") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@study_app.command("run")
def study_run_cmd(
    study_file: StudyArg,
    output: StudyOutOpt = None,
    queue: QueueOpt = None,
    workers: WorkersOpt = None,
    threads: ThreadsOpt = None,
    devices: DevicesOpt = None,
    data_dir: DataDirOpt = None,
    map_above: MapAboveOpt = None,
    heartbeat: HeartbeatOpt = defaults.HEARTBEAT_SECONDS,
    grace: GraceOpt = defaults.GRACE_SECONDS,
    skip_unreadable: SkipUnreadableOpt = False,
):
    """Sample, train in balanced rounds, check fidelity and write the report; a rerun does exactly the rest."""
    from regspace.console import say
    from regspace.data import parse_map_above
    from regspace.study import load_study, run_study
    from regspace.train.runner import Parallelism

    study = load_study(study_file, output=output)
    par = Parallelism(workers=workers, threads=threads, devices=devices)
    out = _interruptible(
        lambda: run_study(
            study,
            queue=queue,
            parallelism=par,
            data_dir=data_dir,
            map_above=parse_map_above(map_above),
            heartbeat=heartbeat,
            grace=grace,
            say=say,
            skip_unreadable=skip_unreadable,
        )  # fmt: skip
    )
    for stage, summary in out.summaries:
        say(f"{stage}: {summary.outcome()}")
    if out.interrupted:
        say(f"study {study.name!r} stopped; run `regspace study run {study_file}` again to finish it")
        raise typer.Exit(130)
    for path in out.written:
        _saved(path)
    _print_study_text(study)


def _print_study_text(study) -> None:
    """The study's comparison and, when it has one, its fidelity check, as written beside its report."""
    for name in ("compare.txt", "fidelity.txt"):
        path = study.output / name
        if path.exists():
            print(path.read_text(), end="")


@study_app.command("status")
def study_status_cmd(
    study_file: StudyArg,
    output: StudyOutOpt = None,
    queue: QueueOpt = None,
):
    """Progress per space: draws sampled, results by status, and the draws every space has finished."""
    from regspace.study import opened, status_rows
    from regspace.text import print_table

    study, store = opened(study_file, output=output, queue=queue)
    p, rows = status_rows(study, store)
    print_table(
        ["space", "draws", "ok", "diverged", "failed", "pending", "finished prefix"],
        rows,
        title=f"study {study.name!r} ({study.store_path}), recipe {study.recipe.name} {study.recipe.hash}"
        + (f", seeds {', '.join(map(str, study.training_seeds))} (a design is done once every seed is)"
           if study.seeds > 1 else ""),  # fmt: skip
        numeric={"ok", "diverged", "failed", "pending", "finished prefix"},
    )
    f = p["fidelity"]
    if f is not None:
        chosen = "chosen once the brief training is done" if f["chosen"] is None else f"{f['settled']} of {f['chosen']}"
        print(f"fidelity check ({study.fidelity.recipe.epochs} epochs on {study.fidelity.recipe.train_size or 'all'} "
              f"images): {chosen} network(s) retrained")  # fmt: skip
    state = "complete" if p["complete"] else (
        "trained; the fidelity check is not done" if p["trained"]
        else f"{p['rounds']} complete round(s) of {study.round_size}")  # fmt: skip
    print(f"{state}; the analyses compare the first {p['equal']} draws of every space")


@study_app.command("report")
def study_report_cmd(
    study_file: StudyArg,
    output: StudyOutOpt = None,
    queue: QueueOpt = None,
):
    """Write the study's comparison, figures and report from what is trained so far (no training)."""
    from regspace.console import say
    from regspace.study import opened, write_analyses

    study, store = opened(study_file, output=output, queue=queue)
    written = write_analyses(study, store, say=say)
    if not written:
        raise RegspaceError(
            f"study {study.name!r}: no draw is trained in every space yet", hint="let `regspace study run` go on"
        )
    for path in written:
        _saved(path)
    _print_study_text(study)


@app.command("fidelity")
@reads("store")
def fidelity_cmd(
    recipe: Annotated[
        Optional[str], typer.Option("--recipe", help="The long recipe's preset (default: the short recipe's).")
    ] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, max=10_000, help="Long recipe: epochs.")] = None,
    train_size: Annotated[
        Optional[int], typer.Option("--train-size", min=1, help="Long recipe: training images.")
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Models to train again, stratified over the spaces.")] = 16,
    spaces: SpacesOpt = None,
    short_hash: Annotated[
        Optional[str], typer.Option("--short-hash", help="The short recipe (default: the one with most results).")
    ] = None,
    long_hash: Annotated[
        Optional[str],
        typer.Option("--long-hash", help="Analyse the check recorded for this long recipe; train nothing."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Which models are drawn for the check.")] = 0,
    top: Annotated[
        Optional[int],
        typer.Option("--top", min=1, help="Retrain the K best models by brief error (and K random ones) instead."),
    ] = None,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Also draw short against long errors here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    workers: WorkersOpt = None,
    threads: ThreadsOpt = None,
    devices: DevicesOpt = None,
    data_dir: DataDirOpt = None,
    *,
    src: Source,
):
    """Is brief training a faithful proxy? Train K models again for longer; rank correlations and space order."""
    from regspace.console import say
    from regspace.store import Store
    from regspace.study import fidelity_command
    from regspace.train.recipe import get_recipe
    from regspace.train.runner import Parallelism

    st = Store.open(src.store)
    long = get_recipe(recipe).replace(epochs=epochs, train_size=train_size) if recipe else None
    result, summary = _interruptible(
        lambda: fidelity_command(
            st,
            long=long,
            epochs=epochs,
            train_size=train_size,
            k=k,
            spaces=_spaces(spaces),
            short_hash=short_hash,
            long_hash=long_hash,
            seed=seed,
            top=top,
            say=say,
            parallelism=Parallelism(workers=workers, threads=threads, devices=devices),
            data_dir=data_dir,
        )  # fmt: skip
    )
    if summary is not None:
        say(summary.outcome())
    if result is None:
        raise typer.Exit(130)
    if plot:
        from regspace.plots.figures import plot_fidelity
        from regspace.plots.style import save

        _saved(save(plot_fidelity(result), plot))
    if json_out:
        import json

        print(json.dumps(result, indent=2))
        return
    from regspace.text import bullets

    sys.stdout.write(bullets(result["sentences"]))


def _spaces(spaces: str | None):
    from regspace.spaces import resolve_names

    return resolve_names(spaces)


BAND_KINDS = ("pointwise", "simultaneous")


def _band_alone(argv: list[str]) -> list[str]:
    """`plot-edf --band` alone still means pointwise bands (as before the option took a value); typer
    has no option with an optional value, so the value is supplied here."""
    if "plot-edf" not in argv:
        return argv
    out = []
    for i, a in enumerate(argv):
        out.append(a)
        if a == "--band" and (i + 1 == len(argv) or argv[i + 1].startswith("-")):  # plot-edf takes no arguments
            out.append("pointwise")
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point: one clear line on error, never a traceback (REGSPACE_DEBUG=1 shows it)."""
    command = typer.main.get_command(app)
    argv = _band_alone(sys.argv[1:] if argv is None else list(argv))
    try:
        rv = command.main(args=argv, prog_name="regspace", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except RegspaceError as e:
        _error(e.line())
        return e.exit_code
    except typer.TyperException as e:  # click usage errors: bad option, missing value, out of range
        code = getattr(e, "exit_code", 2)
        msg = e.format_message() if hasattr(e, "format_message") else str(e)
        cmd = getattr(getattr(e, "ctx", None), "command_path", "regspace")
        _error(f"{' '.join(msg.split())} (see `{cmd} --help`)")
        return code
    except (KeyboardInterrupt, typer.Abort):
        _error("interrupted")
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0
    except Exception as e:  # a bug: say so in one line, keep the trace for REGSPACE_DEBUG
        if os.environ.get("REGSPACE_DEBUG"):
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        _error(f"internal error ({type(e).__name__}: {first[:200]}); rerun with REGSPACE_DEBUG=1 for details")
        return 70


def _error(line: str) -> None:
    print(f"regspace: error: {line}", file=sys.stderr)


def _quiet_broken_pipe() -> None:
    # stdout's reader went away (e.g. `regspace spaces | head`): silence the flush at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
