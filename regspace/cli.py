"""The `regspace` command: a thin face over library functions.

Only typer is imported at start-up; each command imports what it needs, and commands that do not
train never import torch or lightning.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer

from regspace import __version__
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
DEFAULT_STORE = "regspace-store"


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


def _context(preset_name: str, stem: str | None, resolution: int | None, in_channels: int | None, classes: int | None):
    from regspace.design import Context, get_stem
    from regspace.presets import get_preset

    preset = get_preset(preset_name)
    ctx = preset.context
    context = Context(
        resolution=resolution if resolution is not None else ctx.resolution,
        in_channels=in_channels if in_channels is not None else ctx.in_channels,
        num_classes=classes if classes is not None else ctx.num_classes,
    )
    return preset, (get_stem(stem) if stem else preset.stem), context


PresetOpt = Annotated[str, typer.Option("--preset", help="imagenet | cifar | mnist: stem, input size and default budget.")]
StemOpt = Annotated[Optional[str], typer.Option("--stem", help="Override the preset's stem: imagenet | cifar.")]
ResolutionOpt = Annotated[Optional[int], typer.Option("--resolution", min=1, max=4096, help="Input size in pixels (square).")]
InChannelsOpt = Annotated[Optional[int], typer.Option("--in-channels", min=1, max=64, help="Input channels.")]
ClassesOpt = Annotated[Optional[int], typer.Option("--classes", min=1, max=1_000_000, help="Number of output classes.")]


@app.command("spaces")
def spaces_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
):
    """List the design spaces, their parameters and ranges."""
    from regspace.spaces import list_spaces

    rows = []
    for s in list_spaces():
        params = "; ".join(f"{n}: {d}" for n, d in s.parameter_rows())
        rows.append({"space": s.name, "aliases": list(s.aliases), "block": s.block, "dof": s.dof,
                     "constraints": s.constraints(), "parameters": dict(s.parameter_rows()), "description": s.description,
                     "_params": params})
    if json_out:
        import json

        print(json.dumps([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows], indent=2))
        return
    from regspace.console import print_table

    print_table(
        ["space", "block", "dof", "constraints", "parameters"],
        [[r["space"], r["block"], r["dof"], ", ".join(r["constraints"]) or "-", r["_params"]] for r in rows],
        numeric={"dof"},
    )


@app.command("describe")
def describe_cmd(
    designs: Annotated[list[str], typer.Argument(help="Reference names (RegNetX-200MF …), regnet:d=..,w0=..,wa=..,wm=..,g=.. or anynet:d=..;w=..;b=..;g=..")],
    preset: PresetOpt = "imagenet",
    stem: StemOpt = None,
    resolution: ResolutionOpt = None,
    in_channels: InChannelsOpt = None,
    classes: ClassesOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
):
    """Stage widths, depths, groups and exact complexity of designs (default context: ImageNet, as the zoo)."""
    from regspace.specs import describe

    _, stem_, context = _context(preset, stem, resolution, in_channels, classes)
    rows = describe(designs, stem=stem_, context=context)
    if json_out:
        import json

        print(json.dumps(rows, indent=2))
        return
    from regspace.console import print_table
    from regspace.units import format_quantity

    def lst(x):
        return ",".join(format(v, "g") for v in x)

    print_table(
        ["design", "widths", "depths", "group w", "b", "block", "flops", "params", "acts", "model_id"],
        [[r["name"], lst(r["stage_widths"]), lst(r["stage_depths"]), lst(r["stage_group_widths"]),
          lst(r["stage_bottleneck_ratios"]), r["block"], f"{r['flops']:,} ({format_quantity(r['flops'])})",
          f"{r['params']:,}", f"{r['acts']:,}", r["model_id"]] for r in rows],
        title=f"stem {stem_.name}, {context.resolution}×{context.resolution}×{context.in_channels}, {context.num_classes} classes",
        numeric={"flops", "params", "acts"},
    )


@app.command("sample")
def sample_cmd(
    space: Annotated[str, typer.Option("--space", help="X_a … X_e, Y_a … Y_e, RegNet, RegNetX, RegNetY, or a .toml space file.")],
    n: Annotated[int, typer.Option("-n", "--num", min=1, max=10_000_000, help="How many new models to sample.")] = 100,
    flops: Annotated[Optional[str], typer.Option("--flops", help="Flops (multiply-adds) range, e.g. 360M:400M, :2M; ':' for none.")] = None,
    params: Annotated[Optional[str], typer.Option("--params", help="Parameter-count range, e.g. 1M:5M.")] = None,
    acts: Annotated[Optional[str], typer.Option("--acts", help="Activations range, e.g. :3M.")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**63 - 1, help="Sampling seed (the stream continues past models already stored).")] = 0,
    preset: PresetOpt = "cifar",
    stem: StemOpt = None,
    resolution: ResolutionOpt = None,
    in_channels: InChannelsOpt = None,
    classes: ClassesOpt = None,
    max_candidates: Annotated[int, typer.Option("--max-candidates", min=1, help="Give up after drawing this many candidates.")] = 20_000_000,
    store: StoreOpt = DEFAULT_STORE,
):
    """Sample new models from a design space under a complexity budget into the store."""
    from regspace.presets import Budget
    from regspace.sampler import sample_to_store
    from regspace.spaces import get_space
    from regspace.store import Store
    from regspace.units import format_quantity

    sp = get_space(space)
    preset_, stem_, context = _context(preset, stem, resolution, in_channels, classes)
    if flops is None and params is None and acts is None:
        budget = sp.budget or preset_.budget
    else:
        budget = Budget.parse(flops=flops if flops != ":" else None, params=params if params != ":" else None,
                              acts=acts if acts != ":" else None)
    st = Store.create(store)
    r = sample_to_store(st, sp, n, preset=preset_, budget=budget, stem=stem_, context=context, seed=seed,
                        max_candidates=max_candidates)
    fl = r.columns["flops"]
    print(f"sampled {r.n} {sp.name} models into {st.path} (budget: {budget}; their flops "
          f"{format_quantity(fl.min())}–{format_quantity(fl.max())}): {r.drawn:,} candidates drawn, "
          f"acceptance {100 * r.acceptance_rate:.3g}%, {r.seconds:.2f} s")


@app.command("status")
def status_cmd(
    recipe: Annotated[Optional[str], typer.Option("--recipe-hash", help="Only count results of this recipe hash.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    store: StoreOpt = DEFAULT_STORE,
):
    """Per space: models sampled, trained, diverged, failed and pending."""
    from regspace.status import store_status
    from regspace.store import Store

    rows = store_status(Store.open(store), recipe_hash=recipe)
    if json_out:
        import json

        print(json.dumps(rows, indent=2))
        return
    if not rows:
        print(f"store {store} holds no models yet; run `regspace sample --space X_c -n 100`")
        return
    from regspace.console import print_table

    def fmt(e):
        return "-" if e is None else f"{e:.2f}"

    print_table(
        ["space", "recipe", "sampled", "ok", "diverged", "failed", "pending", "min err %", "median err %"],
        [[r["space"], r["recipe"] or "-", r["sampled"], r["ok"], r["diverged"], r["failed"], r["pending"],
          fmt(r["min_error"]), fmt(r["median_error"])] for r in rows],
        numeric={"sampled", "ok", "diverged", "failed", "pending", "min err %", "median err %"},
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: one clear line on error, never a traceback (REGSPACE_DEBUG=1 shows it)."""
    command = typer.main.get_command(app)
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
