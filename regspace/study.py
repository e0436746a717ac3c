"""`regspace study`: a comparison of design spaces described by one TOML file, run by one command.

A study names its spaces, the draws per space, the preset and budget, the recipe, the seed, the
analyses and (optionally) a fidelity check. `study run` samples what is missing, trains in balanced
rounds, runs the fidelity check, and writes the comparison and the report; every step resumes, so a
rerun after a stop finishes exactly the rest. The analyses use each space's first m draws, where m is
the longest prefix of draws that is trained in every space: a study stopped part-way still compares
the spaces at an equal number of draws. No torch here: training runs in the pool's workers.

``regimes`` (flops bands, e.g. ["2M:4M", "8M:16M"]) makes each (space, regime) its own population
(population.py, "populations of a study's regimes"): sampled, counted, trained in rounds and analysed
apart, and read across regimes by the trends analysis (DDS §4, Fig. 11).
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from regspace import population
from regspace.errors import RegspaceError, UsageProblem
from regspace.presets import Budget
from regspace.train.recipe import Recipe, get_recipe

STUDY_FILE = "study.json"  # in the study's store: the identity of the study that owns it
KEYS = {"name", "spaces", "models_per_space", "round", "seed", "seeds", "preset", "output", "budget", "recipe",
        "analysis", "fidelity", "regimes"}  # fmt: skip
ANALYSIS_KEYS = {"error", "normalize", "bins"}
FIDELITY_KEYS = {"spaces", "per_space", "seed", "recipe", "select", "top"}
SELECTS = ("random", "top")  # a fidelity check retrains a random sample per space, or the K best and a control
MIN_FIDELITY_PER_SPACE = 8
MIN_TOP = 4  # a top-K check's Spearman inside the top K needs four models


@dataclass(frozen=True)
class FidelityPlan:
    """Train ``per_space`` models of each of ``spaces`` again with the longer ``recipe`` (select "random"),
    or the ``top`` best of them by brief error and as many at random (select "top")."""

    recipe: Recipe
    spaces: tuple[str, ...]
    per_space: int = MIN_FIDELITY_PER_SPACE
    seed: int = 0
    select: str = "random"
    top: int = 16

    @property
    def key(self) -> str:
        """The check's key in the store's fidelity record."""
        from regspace.analysis_io import fidelity_key

        return fidelity_key(self.recipe.hash, self.top if self.select == "top" else None)


@dataclass(frozen=True)
class Study:
    name: str
    spaces: tuple[str, ...]
    models_per_space: int  # draws per space (i.i.d.: a network drawn twice counts twice)
    round_size: int  # draws per space per training round
    seed: int
    preset: str
    budget: dict  # flops / params / acts range strings, as `regspace sample` takes them
    recipe: Recipe
    output: Path  # the store, the comparison and the report go here
    analysis: dict = field(default_factory=dict)
    fidelity: FidelityPlan | None = None
    source: Path | None = None
    regimes: tuple[str, ...] = ()  # flops bands ("2M:4M"), canonical, disjoint, ascending; () = none
    seeds: int = 1  # each design is trained this many times: training seeds recipe.seed, recipe.seed + 1, …

    @property
    def populations(self) -> tuple[str, ...]:
        """The study's populations: its spaces, or with regimes each (space, regime), regime by regime."""
        if not self.regimes:
            return self.spaces
        return tuple(population.population_name(s, r) for r in self.regimes for s in self.spaces)

    @property
    def training_seeds(self) -> list[int]:
        """The recipe's seed and the next ``seeds`` − 1: one result per design and seed (schema.RESULT_KEY)."""
        return [self.recipe.seed + i for i in range(self.seeds)]

    def seed_sweep(self, seed: int) -> str:
        """The sweep that trains ``seed`` (a sweep trains one seed): the study's for its first seed."""
        return self.sweep if seed == self.recipe.seed else f"{self.sweep}-s{seed}"

    @property
    def store_path(self) -> Path:
        return self.output / "store"

    @property
    def sweep(self) -> str:
        return self.name

    def identity(self) -> dict:
        """What must not change under a store that already holds results: the models per space and the
        round size may grow or change, nothing else."""
        out = {
            "name": self.name,
            "spaces": list(self.spaces),
            "seed": self.seed,
            "preset": self.preset,
            "budget": self.budget,
            "recipe_hash": self.recipe.hash,
        }
        if self.regimes:  # only then: a study without regimes keeps the identity (and store) it had
            out["regimes"] = list(self.regimes)
        return out

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]


def _recipe(table: dict, where: str, default: Recipe | None = None) -> Recipe:
    """A recipe table: ``base`` (a preset name; else ``default``, else quick) with fields overridden. A field
    given as a table (``lr = {dist = "log_uniform", low = 0.05, high = 1}``) is drawn per model instead."""
    from regspace.spaces.hparams import laws_from_tables

    table = dict(table)
    base = get_recipe(str(table.pop("base"))) if "base" in table else default or get_recipe("quick")
    drawn = {k: table.pop(k) for k in list(table) if isinstance(table[k], dict)}
    try:
        recipe = base.replace(**table)
        if drawn:
            laws = {p.name: p for p in (*base.laws, *laws_from_tables(drawn, where))}
            recipe = recipe.with_laws(tuple(laws.values()))
    except TypeError as e:
        raise UsageProblem(f"{where}: {e}") from None
    except UsageProblem as e:  # the file and table it came from, then what is wrong ("lr must be a number")
        line = e.line().removeprefix("recipe: ")
        raise UsageProblem(line if line.startswith(where) else f"{where}: {line}") from None
    return recipe


def _with_space_laws(recipe: Recipe, names, where: str) -> Recipe:
    """The study's recipe with the laws its spaces' files declare ([hparams.lr]) added: one recipe trains
    every space of a study, so a field's law must be the same wherever it is declared."""
    from regspace.spaces import get_space

    laws = {p.name: (p, "[recipe]") for p in recipe.laws}
    for name in names:
        for p in get_space(name).hparams:
            have = laws.get(p.name)
            if have and have[0] != p:
                raise UsageProblem(f"{where}: {p.name} is drawn {p.describe()} by space {name} but "
                                   f"{have[0].describe()} by {have[1]}; one recipe trains the whole study")  # fmt: skip
            laws.setdefault(p.name, (p, f"space {name}"))
    return recipe.with_laws(tuple(p for p, _ in laws.values())) if laws else recipe


def load_study(path: str | Path, *, output: str | Path | None = None) -> Study:
    """Read a study file; paths in it are relative to the file. ``output`` overrides the file's."""
    from regspace.spaces import resolve_names

    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise UsageProblem(f"study file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageProblem(f"cannot read study file {p}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageProblem(f"study file {p} is not valid TOML: {e}") from None
    where = f"study file {p}"
    unknown = set(raw) - KEYS
    if unknown:
        raise UsageProblem(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(KEYS))})")
    for key in ("spaces", "models_per_space"):
        if key not in raw:
            raise UsageProblem(f"{where}: `{key}` is missing")
    spaces = raw["spaces"] if isinstance(raw["spaces"], list) else [raw["spaces"]]
    names = tuple(resolve_names(",".join(map(str, spaces))) or ())
    if not names:
        raise UsageProblem(f"{where}: `spaces` is empty")
    n = raw["models_per_space"]
    if not isinstance(n, int) or n < 1:
        raise UsageProblem(f"{where}: `models_per_space` must be a positive integer")
    round_size = raw.get("round", 8)
    if not isinstance(round_size, int) or round_size < 1:
        raise UsageProblem(f"{where}: `round` must be a positive integer (draws per space per round)")
    budget = {k: str(v) for k, v in raw.get("budget", {}).items()}
    bad = set(budget) - {"flops", "params", "acts"}
    if bad:
        raise UsageProblem(f"{where}: [budget] takes flops, params and acts, not {', '.join(sorted(bad))}")
    Budget.parse(budget.get("flops"), budget.get("params"), budget.get("acts"))  # a malformed range fails now
    regimes = parse_regimes(raw.get("regimes", []), where)
    if regimes and "flops" in budget:
        raise UsageProblem(f"{where}: `regimes` are flops bands; leave [budget] flops out (params, acts may stay)")
    analysis = dict(raw.get("analysis", {}))
    if set(analysis) - ANALYSIS_KEYS:
        raise UsageProblem(f"{where}: [analysis] takes {', '.join(sorted(ANALYSIS_KEYS))}")
    recipe = _with_space_laws(_recipe(raw.get("recipe", {}), f"{where} [recipe]"), names, where)
    seeds = raw.get("seeds", 1)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise UsageProblem(f"{where}: `seeds` must be a positive integer (trainings per design)")
    fidelity = None
    if "fidelity" in raw:
        f = dict(raw["fidelity"])
        if set(f) - FIDELITY_KEYS:
            raise UsageProblem(f"{where}: [fidelity] takes {', '.join(sorted(FIDELITY_KEYS))}")
        f_spaces = tuple(resolve_names(",".join(f.get("spaces", names))) or ())
        if set(f_spaces) - set(names):
            raise UsageProblem(f"{where}: [fidelity] spaces must be among the study's spaces")
        per_space = _integer(f, "per_space", MIN_FIDELITY_PER_SPACE, f"{where} [fidelity]")
        select = f.get("select", "random")
        if per_space < MIN_FIDELITY_PER_SPACE:
            raise UsageProblem(f"{where}: [fidelity] per_space must be at least {MIN_FIDELITY_PER_SPACE}")
        if per_space > n and select != "top":  # a top-K check reads `top`, not per_space
            raise UsageProblem(f"{where}: [fidelity] per_space ({per_space}) exceeds models_per_space ({n})")
        # the long recipe starts from the study's, so both validate on the same images
        long = _recipe(f.get("recipe", {}), f"{where} [fidelity.recipe]", default=recipe)
        check_same_validation(recipe, long)
        top = f.get("top", 16)
        if select not in SELECTS:
            raise UsageProblem(f"{where}: [fidelity] select must be one of {', '.join(SELECTS)}")
        if isinstance(top, bool) or not isinstance(top, int) or top < MIN_TOP:
            raise UsageProblem(f"{where}: [fidelity] top must be an integer of at least {MIN_TOP}")
        if select == "top" and top >= n * len(f_spaces):  # known now, not after every model has trained
            raise UsageProblem(f"{where}: [fidelity] top = {top} needs more than {top} draws to choose from, and "
                               f"{'each regime of ' if raw.get('regimes') else ''}the check's spaces hold "
                               f"{n * len(f_spaces)} ({len(f_spaces)} × models_per_space {n})")  # fmt: skip
        fidelity = FidelityPlan(long, f_spaces, per_space, _integer(f, "seed", 0, f"{where} [fidelity]"), select, top)
    base = p.resolve().parent
    out = Path(output) if output is not None else Path(os.path.normpath(base / raw.get("output", f"results/{p.stem}")))
    return Study(
        name=str(raw.get("name", p.stem)),
        spaces=names,
        models_per_space=n,
        round_size=round_size,
        seed=_integer(raw, "seed", 0, where),
        preset=str(raw.get("preset", "cifar")),
        budget=budget,
        recipe=recipe,
        output=out,
        analysis=analysis,
        fidelity=fidelity,
        source=p,
        regimes=regimes,
        seeds=seeds,
    )


def _integer(table: dict, key: str, default: int, where: str) -> int:
    """``table[key]`` (else ``default``) as a seed or count: an integer from 0 to 2^32 − 1 (what numpy's
    seeding takes). Raises UsageProblem naming ``where`` and the key."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise UsageProblem(f"{where}: `{key}` must be an integer from 0 to 2^32 - 1, not {value!r}")
    return value


def parse_regimes(value, where: str) -> tuple[str, ...]:
    """A study's ``regimes``: flops ranges LOW:HIGH (both ends), written canonically ("2M:4M"), disjoint,
    in ascending order. A network's flops are fixed, so disjoint bands put each network in one regime,
    which is what lets (space, model id) name a population's network. Raises UsageProblem."""
    from regspace.units import parse_range

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageProblem(f'{where}: `regimes` is a list of flops ranges, e.g. ["2M:4M", "8M:16M"]')
    ranges = [parse_range(v, what="regime flops") for v in value]
    if any(r.low is None or r.high is None for r in ranges):
        raise UsageProblem(f"{where}: each regime needs both ends, LOW:HIGH")
    ranges.sort(key=lambda r: r.low)
    for a, b in zip(ranges, ranges[1:]):
        if b.low <= a.high:
            raise UsageProblem(f"{where}: regimes {a} and {b} overlap", hint="regimes must be disjoint flops bands")
    labels = tuple(str(r) for r in ranges)
    if len(labels) == 1:
        raise UsageProblem(f"{where}: one regime is a [budget] flops range; give two or more regimes")
    return labels


def regime_seed(seed: int, regime: str) -> int:
    """The seed of a regime's streams: its own, so a regime's draws do not depend on the other regimes or
    on the order they are sampled in (a 32-bit hash of the study seed and the regime's budget string)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{regime}".encode()).digest()[:4], "big")


def check_same_validation(short: Recipe, long: Recipe) -> None:
    """Short and long errors are compared model by model: they must be measured on the same images."""
    fields = ("dataset", "val_size", "split_seed", "resolution")
    diff = [f for f in fields if getattr(short, f) != getattr(long, f)]
    if diff:
        raise UsageProblem(
            f"the long recipe validates on other images than the short one ({', '.join(diff)} differ)",
            hint="give the long recipe the same dataset, val_size, split_seed and resolution",
        )
    if short.hash == long.hash:
        raise UsageProblem("the long recipe is the short recipe itself", hint="change its epochs or train_size")


# -- the order of draws ----------------------------------------------------------------------------


def draw_order(store, spaces) -> dict[str, list[str]]:
    """Per population (a space, or a space's regime: population.by_population), the model id of each draw
    in sampling order (seed, then draw index): population.draw_order over the store's draws."""
    return population.draw_order(population.by_population(store.draw_rows()), spaces)


def round_order(models: list[dict], order: dict[str, list[str]], round_size: int) -> list[dict]:
    """Models in balanced rounds: round r holds each population's draws r·k … (r+1)·k − 1, population after
    population. A network drawn several times trains once, in the round of its first draw. ``models``
    need ``space`` and ``model_id`` only: regimes are disjoint, so a space's network is in one regime."""
    rank = {}
    for j, (name, ids) in enumerate(order.items()):
        space = population.split_population(name)[0]
        for i, mid in enumerate(ids):
            rank.setdefault((space, mid), (i, j))

    def key(m):
        i, j = rank.get((m["space"], m["model_id"]), (1 << 60, len(order)))
        return (i // round_size, j, i)

    return sorted(models, key=key)


def progress(store, study: Study) -> dict:
    """Per population (space, or space and regime): draws sampled, results by status, and the complete
    prefix; ``equal``: the number of draws that every population has finished (what the analyses use);
    ``order``: population → its first models_per_space draws (model ids). A
    design's status is that of its seeds together (analysis.seeds.design_status): pending until every seed of
    the study has a result."""
    from regspace.analysis.seeds import design_status

    order = draw_order(store, study.populations)
    t = store.results_for(study.recipe.hash, ["model_id", "seed", "status"]).to_pylist()
    by_seed: dict[str, dict] = {}
    for r in t:
        by_seed.setdefault(r["model_id"], {})[r["seed"]] = r["status"]
    status = {m: design_status(s.get(seed) for seed in study.training_seeds) for m, s in by_seed.items()}
    rows = []
    for s in study.populations:
        ids = order[s][: study.models_per_space]
        counts = population.status_counts(ids, status)
        prefix = population.finished_prefix(ids, status)
        rows.append({"space": s, "target": study.models_per_space, "draws": len(ids), **counts, "prefix": prefix})
    equal = min((r["prefix"] for r in rows), default=0)
    return {"spaces": rows, "equal": equal, "rounds": equal // study.round_size, "complete": all(
        r["prefix"] >= study.models_per_space for r in rows),
        "order": {s: order[s][: study.models_per_space] for s in study.populations}}  # fmt: skip


# -- stages ----------------------------------------------------------------------------------------


def open_store(study: Study, *, create: bool = True, strict: bool = False):
    """The study's store; refuses one that belongs to a different study. ``strict``: see Store.strict."""
    from regspace.store import Store

    if not create and not study.store_path.exists():
        raise RegspaceError(f"study {study.name!r} has not started: {study.store_path} does not exist",
                            hint=f"run `regspace study run {study.source}`")  # fmt: skip
    store = Store.create(study.store_path, strict=strict) if create else Store.open(study.store_path, strict=strict)
    ident = study.identity()
    have = store.read_json(STUDY_FILE)
    if have is not None:
        if have.get("identity") != ident:
            diff = sorted(k for k in ident if have.get("identity", {}).get(k) != ident[k])
            raise RegspaceError(
                f"{store.path} holds study {have.get('identity', {}).get('name')!r} with other settings "
                f"({', '.join(diff)})",
                hint="only models_per_space and round may change under a study's store; use another `output`",
            )
    elif create:
        store.write_json(STUDY_FILE, {"identity": ident, "hash": study.hash}, indent=2)
    return store


def collect(study: Study, store, url: str) -> None:
    """Copy what the study's sweeps (its models, and its fidelity check) hold into the local store."""
    from regspace.sweep.adapter import open_study
    from regspace.sweep.transfer import collect as collect_sweep

    seeds = [study.seed_sweep(s) for s in study.training_seeds]
    for sweep in seeds + ([f"{study.sweep}-fidelity"] if study.fidelity else []):
        try:
            q = open_study(url, sweep, create=False)
        except RegspaceError:
            continue  # that stage has not begun
        collect_sweep(q, store)


def opened(path, *, output=None, queue: str | None = None) -> tuple[Study, object]:
    """A started study and its store, with the queue's results collected when ``queue`` is given."""
    study = load_study(path, output=output)
    store = open_store(study, create=False)
    if queue:
        collect(study, store, queue)
    return study, store


def sample_study(store, study: Study) -> list[str]:
    """Sample each space up to ``models_per_space`` draws (idempotent: the seeded stream resumes)."""
    from regspace.populate import sample_summary, sample_to_store
    from regspace.presets import resolve_context
    from regspace.spaces import get_space

    lines = []
    preset, stem, context = resolve_context(study.preset)
    for regime in study.regimes or (None,):
        for name in study.spaces:
            space = get_space(name)
            have = _draws(store, space.name, regime)
            if have >= study.models_per_space:
                continue
            budget = Budget.from_options(
                regime or study.budget.get("flops"), study.budget.get("params"), study.budget.get("acts"),
                default=space.budget or preset.budget,
            )  # fmt: skip
            seed = study.seed if regime is None else regime_seed(study.seed, regime)
            r = sample_to_store(store, space, study.models_per_space - have, preset=preset, budget=budget, stem=stem,
                                context=context, seed=seed, regime=regime, hparams=study.recipe.laws)  # fmt: skip
            lines.append(sample_summary(r, budget, store.path))
    return lines


def _draws(store, space: str, regime: str | None) -> int:
    """The draws the store holds of ``space`` in ``regime`` (None: all of the space's draws, as before)."""
    if regime is None:
        return store.draws(space)
    rows = population.by_population(store.read_arrow("models", ["space", "multiplicity", "regime"]))
    return population.draw_count(rows, population.population_name(space, regime))


def study_rows(store, study: Study, model_ids: set[str] | None = None) -> list[dict]:
    """The study's raw model rows (one per sampling call and network) in round order, for a queue."""
    order = draw_order(store, study.populations)
    keep = {(s, mid) for s, ids in order.items() for mid in ids[: study.models_per_space]}
    rows = [
        r
        for r in store.read_arrow("models", dedupe=False).to_pylist()
        if (population.population_name(r["space"], r["regime"]), r["model_id"]) in keep
        and (model_ids is None or r["model_id"] in model_ids)
    ]
    return round_order(rows, order, study.round_size)


def analysis_options(study: Study, store) -> dict:
    """load_table's options for the study's analyses: its spaces, its recipe, its equal-draws prefix."""
    p = progress(store, study)
    first = p["equal"] if p["equal"] < max((r["draws"] for r in p["spaces"]), default=0) else None
    return {
        "spaces": list(study.populations),
        "recipe_hash": study.recipe.hash,
        "error": study.analysis.get("error", "error"),
        "first_draws": first,  # None: every draw; 0: no space has finished a draw that all others have
        "seeds": study.training_seeds,  # each design's error: the mean of these seeds' results
    }


# -- running a study -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What `study run` did: the training summaries, whether it stopped early, and the files written."""

    summaries: list = field(default_factory=list)
    interrupted: bool = False
    written: list = field(default_factory=list)


def _train_options(parallelism, data_dir, map_above) -> dict:
    from regspace.train.runner import Parallelism

    return {"parallelism": parallelism or Parallelism(), "data_dir": data_dir, "map_above": map_above}


def _queue_stage(url: str, sweep: str, store, rows: list[dict], recipe: Recipe, *, heartbeat, grace, say, **options):
    """Enqueue ``rows`` in ``sweep`` once (whichever machine comes first), train from it until it is
    empty, and collect everything it holds into ``store``."""
    from regspace.sweep import transfer
    from regspace.sweep.adapter import open_study
    from regspace.train.recipe import agree_recipe
    from regspace.train.runner import train_from_queue

    q = open_study(url, sweep, heartbeat=heartbeat, grace=grace)

    def enqueue():
        agree_recipe(q, recipe, explicit=True)
        added = transfer.enqueue(q, rows)
        say(f"enqueued {added} model(s) in {q.where}")

    q.run_once("enqueued", enqueue)
    summary = train_from_queue(url, sweep, recipe, explicit_recipe=True, heartbeat=heartbeat, grace=grace, **options)
    transfer.collect(q, store)
    return summary


def run_study(
    study: Study,
    *,
    queue: str | None = None,
    parallelism=None,
    data_dir: str | None = None,
    map_above: float | None = None,
    heartbeat: int | None = None,
    grace: int | None = None,
    say=print,
    skip_unreadable: bool = False,
) -> Outcome:
    """Sample, train in balanced rounds, check fidelity, and write the analyses; resumes where it stopped.
    The store is read strictly (a damaged part file stops the study) unless ``skip_unreadable``."""
    from regspace import defaults
    from regspace.train.runner import train

    heartbeat = heartbeat or defaults.HEARTBEAT_SECONDS
    grace = grace or defaults.GRACE_SECONDS
    options = _train_options(parallelism, data_dir, map_above)
    out = Outcome()
    store = open_store(study, strict=not skip_unreadable)
    for line in sample_study(store, study):
        say(line)
    order = {s: ids[: study.models_per_space] for s, ids in draw_order(store, study.populations).items()}
    ids = {mid for v in order.values() for mid in v}
    entry = None
    if study.fidelity and study.fidelity.select == "random":  # chosen from the draws before any training
        f = study.fidelity
        entry, replaced = record_random(store, short_hash=study.recipe.hash, long=f.recipe, seed=f.seed,
                                        order=fidelity_order(study, order), per_space=f.per_space)  # fmt: skip
        if replaced:
            say(f"study {study.name!r}: fidelity check: {replaced} of its recorded network(s) are not among the first "
                f"{study.models_per_space} draws; replaced by others drawn at random from them")  # fmt: skip

    def stage(sweep: str, recipe: Recipe, models: set[str], **local):
        """Train ``models`` with ``recipe``: through the --queue sweep when there is one (the study's one
        decision between a sweep and the local store), else from the store (``local``: train's options)."""
        if queue:
            rows = study_rows(store, study, models)
            return _queue_stage(queue, sweep, store, rows, recipe, heartbeat=heartbeat, grace=grace, say=say,
                                **options)  # fmt: skip
        return train(store, recipe, only=models, **local, **options)

    seeds = study.training_seeds
    for i, seed in enumerate(seeds):  # one seed after another: each seed's results are its own
        if len(seeds) > 1:  # the progress lines that follow are this seed's
            say(f"study {study.name!r}: seed {seed} ({i + 1} of {len(seeds)}): {len(ids)} network(s) of "
                f"{len(study.populations)} population(s)")  # fmt: skip
        summary = stage(study.seed_sweep(seed), study.recipe.replace(seed=seed), ids, spaces=list(study.spaces),
                        order=lambda ms: round_order(ms, order, study.round_size))  # fmt: skip
        out.summaries.append(("models" if seed == study.recipe.seed else f"models, seed {seed}", summary))
        if summary.interrupted:
            out.interrupted = True
            return out
    if study.fidelity and study.fidelity.select == "top":  # the best by brief error: known only now
        f = study.fidelity
        entry = record_top(store, short_hash=study.recipe.hash, long=f.recipe, order=fidelity_order(study, order),
                           k=f.top, seed=f.seed)  # fmt: skip
    if entry is not None:
        f = study.fidelity
        chosen = {mid for v in entry["models"].values() for mid in v}
        what = f"the {f.top} best and {f.top} at random" if f.select == "top" else f"{f.per_space} per space"
        what += " in each flops regime" if entry.get("regimes") else ""
        say(f"study {study.name!r}: fidelity check, {len(chosen)} network(s) ({what}) with the longer recipe "
            f"({f.recipe.epochs} epochs on {f.recipe.train_size or 'all'} images)")  # fmt: skip
        summary = stage(f"{study.sweep}-fidelity", f.recipe, chosen)
        out.summaries.append(("fidelity", summary))
        if summary.interrupted:
            out.interrupted = True
            return out
    out.written = write_analyses(study, store, say=say)
    return out


def fidelity_order(study: Study, order: dict[str, list[str]]) -> dict[str, list[str]]:
    """The draw order of the populations the fidelity check samples from: its spaces, in every regime."""
    return {s: order[s] for s in study.populations if population.split_population(s)[0] in study.fidelity.spaces}


def write_analyses(study: Study, store, *, say=None) -> list[Path]:
    """The study's comparison (text and JSON), EDF, curves and report, at its equal-draws prefix. An
    analysis that cannot run on these models (the normalised EDFs of spaces whose complexity ranges do not
    overlap, or too few models) is left out with one line through ``say`` and a sentence in the report."""
    import contextlib

    from regspace.analysis.compare import compare
    from regspace.analysis_io import load_table
    from regspace.console import say as default_say
    from regspace.files import write_file
    from regspace.plots.figures import plot_curves, plot_edf
    from regspace.plots.style import save
    from regspace.report import build_report
    from regspace.text import compare_text

    opts = analysis_options(study, store)
    if opts["first_draws"] == 0:
        return []
    df = load_table(store, **opts)
    normalize = study.analysis.get("normalize")
    bins = int(study.analysis.get("bins", 10))
    result = compare(df)  # the plain EDFs decide; the normalised comparison is written beside them
    written = []
    out = study.output
    write_file(out / "compare.json", json.dumps(result, indent=2))
    say = say or default_say
    if normalize:
        try:
            normalised = compare(df, normalize=normalize, n_bins=bins)
            edf_normalised = plot_edf(df, normalize=normalize, band=True, n_bins=bins)
        except RegspaceError as e:
            say(f"study {study.name!r}: the comparison normalised by {normalize} is left out: {e}")
            normalize = None
        else:
            extra = out / f"compare_{normalize}.json"
            write_file(extra, json.dumps(normalised, indent=2))
            written.append(extra)
    write_file(out / "compare.txt", compare_text(result))
    written += [out / "compare.txt", out / "compare.json"]
    written.append(save(plot_edf(df, band=True), out / "edf.png"))
    if normalize:
        written.append(save(edf_normalised, out / f"edf_{normalize}.png"))
    with contextlib.suppress(RegspaceError):  # a store trained before curves were kept has none
        written.append(save(plot_curves(df), out / "curves.png"))
    written += _write_fidelity(study, store, opts["recipe_hash"], opts["error"])
    written += _write_trends(study, df)
    written.append(
        build_report(
            store,
            out / "report.html",
            spaces=opts["spaces"],
            recipe_hash=opts["recipe_hash"],
            first_draws=opts["first_draws"],
            error=opts["error"],
            store_arg=_as_typed(store.path),
        )  # fmt: skip
    )
    return written


def _as_typed(path: Path) -> str:
    """``path`` as the user would type it from here: relative to the working directory when it lies below
    it. The report's commands then run from where `study run` ran, and a committed report names no machine's
    checkout (an absolute path would be another machine's)."""
    rel = os.path.relpath(path)
    return str(path) if rel.startswith("..") else rel


def _write_fidelity(study: Study, store, short_hash: str, error: str) -> list[Path]:
    """fidelity.json and fidelity.txt (its sentences), once the study's fidelity check has results."""
    from regspace.analysis_io import analysed_fidelity
    from regspace.files import write_file
    from regspace.text import fidelity_text

    if not study.fidelity:
        return []
    result = analysed_fidelity(store, short_hash=short_hash, error=error, long_hash=study.fidelity.key)
    if result is None:
        return []
    out = study.output
    write_file(out / "fidelity.json", json.dumps(result, indent=2))
    write_file(out / "fidelity.txt", fidelity_text(result))
    return [out / "fidelity.json", out / "fidelity.txt"]


def _write_trends(study: Study, df) -> list[Path]:
    """trends.json, trends.txt (its sentences) and a figure per space, for a study with regimes."""
    from regspace.analysis.trends import regime_trends, sentences
    from regspace.files import write_file
    from regspace.plots.style import save
    from regspace.plots.trends import plot_trends
    from regspace.text import bullets

    if not study.regimes:
        return []
    result = regime_trends(df)
    out = study.output
    write_file(out / "trends.json", json.dumps(result, indent=2))
    write_file(out / "trends.txt", bullets(sentences(result)))
    written = [out / "trends.json", out / "trends.txt"]
    for s in result["spaces"]:
        if s["params"]:
            written.append(save(plot_trends(result, space=s["space"]), out / f"trends_{s['space']}.png"))
    return written


def status_rows(study: Study, store) -> tuple[dict, list[list]]:
    """`study status`: the progress (:func:`progress`, with "fidelity": :func:`fidelity_progress`, and
    "complete" only once the fidelity check is too), and a row per space."""
    p = progress(store, study)
    fid = fidelity_progress(store, study, p["order"], trained=p["complete"])
    p = {**p, "fidelity": fid, "trained": p["complete"],
         "complete": p["complete"] and (fid is None or fid["settled"] == fid["chosen"])}  # fmt: skip
    return p, [
        [r["space"], f"{r['draws']}/{r['target']}", r["ok"], r["diverged"], r["failed"], r["pending"], r["prefix"]]
        for r in p["spaces"]
    ]


def random_selection(store, *, short_hash: str, long: Recipe, order: dict[str, list[str]], per_space: int,
                     seed: int) -> tuple[dict, dict]:  # fmt: skip
    """The random check's networks as `study run` chooses them, read only: ``per_space`` of each population of
    ``order`` (space → draws) at random (analysis.fidelity.select), keeping those of the recorded selection
    that are still among the draws. Returns (the recorded models, or {}; the models), each space → ids."""
    from regspace.analysis.fidelity import select
    from regspace.analysis_io import kept_selection

    before = kept_selection(store, short_hash=short_hash, long_hash=long.hash) or {}
    return before, select(order, per_space, seed, keep=before)


def record_random(store, *, short_hash: str, long: Recipe, order: dict[str, list[str]], per_space: int,
                  seed: int) -> tuple[dict, int]:  # fmt: skip
    """Choose (:func:`random_selection`) and record a random check. Returns (the record's entry, how many
    recorded networks were dropped for not being among the draws)."""
    from regspace.analysis_io import record_fidelity

    before, models = random_selection(store, short_hash=short_hash, long=long, order=order, per_space=per_space,
                                      seed=seed)  # fmt: skip
    entry = record_fidelity(store, short_hash=short_hash, long_recipe=long, models=models, seed=seed)
    now = {m for v in models.values() for m in v}
    return entry, len({m for v in before.values() for m in v} - now)


def top_selection(store, *, short_hash: str, order: dict[str, list[str]], k: int, seed: int,
                  error: str = "error") -> tuple[dict, dict]:  # fmt: skip
    """A top-K check's networks, read only: the ``k`` best networks of ``order`` (space → draws) by brief
    error under ``short_hash`` (their mean over seeds), and ``k`` at random as a control
    (analysis.fidelity.select_top); with flops regimes, ``k`` and ``k`` in each regime
    (select_top_by_regime). Returns (the picks: {"top", "control", ...}; the models, space → ids)."""
    from regspace.analysis.fidelity import select_top_by_regime
    from regspace.analysis_io import short_errors

    picked = select_top_by_regime(short_errors(store, short_hash, error), order, k, seed)
    chosen = set(picked["top"]) | set(picked["control"])
    models: dict[str, list[str]] = {}
    for space, ids in order.items():  # each retrained network under the first space that drew it
        for mid in dict.fromkeys(ids):
            if mid in chosen and not any(mid in v for v in models.values()):
                models.setdefault(space, []).append(mid)
    return picked, models


def record_top(store, *, short_hash: str, long: Recipe, order: dict[str, list[str]], k: int, seed: int,
               error: str = "error") -> dict:  # fmt: skip
    """Choose (:func:`top_selection`) and record a top-K check. Returns the record's entry; a rerun over the
    same brief results keeps its models."""
    from regspace.analysis_io import record_fidelity

    picked, models = top_selection(store, short_hash=short_hash, order=order, k=k, seed=seed, error=error)
    return record_fidelity(store, short_hash=short_hash, long_recipe=long, models=models, seed=seed, top=picked)


def fidelity_progress(store, study: Study, order: dict[str, list[str]], trained: bool) -> dict | None:
    """The study's fidelity check, read only: {"chosen": the networks `study run` retrains (None while a
    top-K check waits for the brief results: ``trained`` False), "settled": how many of them have a long
    result}; None for a study without one. ``order``: population → its analysed draws."""
    f = study.fidelity
    if f is None:
        return None
    fo = fidelity_order(study, order)
    if f.select == "random":
        _, models = random_selection(store, short_hash=study.recipe.hash, long=f.recipe, order=fo,
                                     per_space=f.per_space, seed=f.seed)  # fmt: skip
    elif trained:
        _, models = top_selection(store, short_hash=study.recipe.hash, order=fo, k=f.top, seed=f.seed)
    else:
        return {"chosen": None, "settled": 0}
    chosen = {m for v in models.values() for m in v}
    settled = store.settled_ids(f.recipe.hash, seed=f.recipe.seed, with_failed=True)
    return {"chosen": len(chosen), "settled": len(chosen & settled)}


def fidelity_command(
    store,
    *,
    long: Recipe | None = None,
    epochs: int | None = None,
    train_size: int | None = None,
    k: int = 16,
    spaces: list[str] | None = None,
    short_hash: str | None = None,
    long_hash: str | None = None,
    seed: int = 0,
    error: str = "error",
    top: int | None = None,
    say=print,
    **train_options,
) -> tuple[dict | None, object]:
    """`regspace fidelity`: train ``k`` models (stratified over ``spaces``, at least 8 each) again with a
    longer recipe, then compare short and long errors. The long recipe is ``long``, or the short one with
    ``epochs``/``train_size`` changed. ``top`` K: retrain instead the K best models by brief error and K
    random ones as a control (:func:`record_top`). ``long_hash``: analyse a check already recorded, train
    nothing.
    Returns (the analysis, or None when interrupted; the training summary or None)."""
    from regspace.analysis.table import choose_recipe
    from regspace.analysis_io import fidelity_result, recorded_fidelity
    from regspace.train.runner import train

    if long_hash is not None:
        entry = recorded_fidelity(store, long_hash)
        if entry is None:
            raise RegspaceError(f"the store has no fidelity check with long recipe {long_hash}")
        return fidelity_result(store, entry, error=error), None
    results = store.read_arrow("results", ["model_id", "recipe_hash", "recipe"]).to_pylist()
    short = choose_recipe([r["recipe_hash"] for r in results], short_hash)
    if short is None:
        raise RegspaceError("the store has no results", hint="train the models with the short recipe first")
    short_recipe = Recipe(**json.loads(next(r["recipe"] for r in results if r["recipe_hash"] == short)))
    long = long or short_recipe.replace(epochs=epochs, train_size=train_size)
    check_same_validation(short_recipe, long)
    trained_ids = {r["model_id"] for r in results if r["recipe_hash"] == short}
    order = draw_order(store, None)  # every population: a space, or each of its flops regimes
    if spaces:  # a space names its regimes' populations too ("X_c": X_c@1M:2M, X_c@3M:6M)
        order = {s: ids for s, ids in order.items() if s in spaces or population.split_population(s)[0] in spaces}
    order = {s: [m for m in ids if m in trained_ids] for s, ids in order.items()}
    order = {s: ids for s, ids in order.items() if ids}
    if not order:
        raise RegspaceError(f"no model of {', '.join(spaces or ['the store'])} has a result for recipe {short}")
    if top is not None:
        if top < MIN_TOP:
            raise UsageProblem(f"--top {top}: the check needs at least {MIN_TOP} models", hint=f"use --top {MIN_TOP}")
        entry = record_top(store, short_hash=short, long=long, order=order, k=top, seed=seed, error=error)
        chosen = {mid for v in entry["models"].values() for mid in v}
        per = " in each flops regime" if entry.get("regimes") else ""
        say(f"fidelity: the {top} best models by brief error and {top} at random{per} ({len(chosen)} networks), short "
            f"recipe {short}, long recipe {long.name} {long.hash} ({long.epochs} epochs on "
            f"{long.train_size or 'all'} images)")  # fmt: skip
        summary = train(store, long, only=chosen, **train_options)
        if summary.interrupted:
            return None, summary
        return fidelity_result(store, entry, error=error), summary
    per_space = k // len(order)
    if per_space < MIN_FIDELITY_PER_SPACE:
        raise UsageProblem(
            f"--k {k} gives {per_space} model(s) per space over {len(order)} space(s); the check needs at least "
            f"{MIN_FIDELITY_PER_SPACE} per space",
            hint=f"use --k {MIN_FIDELITY_PER_SPACE * len(order)} or more, or fewer --spaces",
        )
    entry, _ = record_random(store, short_hash=short, long=long, order=order, per_space=per_space, seed=seed)
    chosen = {mid for v in entry["models"].values() for mid in v}
    say(f"fidelity: {len(chosen)} model(s) of {', '.join(entry['models'])}, short recipe {short}, long recipe "
        f"{long.name} {long.hash} ({long.epochs} epochs on {long.train_size or 'all'} images)")  # fmt: skip
    summary = train(store, long, only=chosen, **train_options)
    if summary.interrupted:
        return None, summary
    return fidelity_result(store, entry, error=error), summary
