"""Training recipes (docs/design.md §6): every hyper-parameter in one frozen value, hashed with each result.

No torch here: recipes are chosen, printed and hashed by commands that do not train.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from regspace.errors import RegspaceError, UsageProblem
from regspace.schema import recipe_hash, run_key
from regspace.spaces import hparams as hp

AUGMENTS = ("none", "flip", "crop", "flip+crop")
PRECISIONS = ("auto", "bf16-mixed", "32-true", "16-mixed")
CONV_INITS = ("reference", "grouped")


@dataclass(frozen=True)
class Recipe:
    """A brief training schedule, the same for every model of a comparison.

    lr is the learning rate at ``lr_batch`` images per step; the rate used is lr · batch_size / lr_batch
    (linear scaling). Sizes are numbers of images; None means "all that is left".
    """

    # The defaults ARE the quick recipe (RECIPES["quick"] is Recipe()): one source for its values.
    name: str = "quick"
    dataset: str = "fashion-mnist"
    epochs: int = 3
    batch_size: int = 128
    lr: float = 0.4
    lr_batch: int = 128
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    bn_weight_decay: float | None = None  # weight decay on BN scales/shifts and biases; None: as weight_decay
    warmup_epochs: float = 0.5
    label_smoothing: float = 0.0
    augment: str = "none"
    precision: str = "auto"  # auto: bf16-mixed where bf16 runs natively (sm80+ GPUs, AVX-512 bf16 CPUs);
    # else 16-mixed (with loss scaling) on older GPUs and 32-true on CPUs (train.fit.resolve_precision)
    channels_last: bool = True
    zero_init_final_gamma: bool = True
    conv_init: str = "reference"  # reference: fan_out = k·k·out (pycls); grouped: also divided by groups
    grad_clip: float | None = None  # clip the gradient's global 2-norm to this value (None: no clipping)
    train_size: int | None = 10_000
    val_size: int = 5_000
    test_size: int | None = None
    split_seed: int = 0
    seed: int = 0
    resolution: int | None = None  # None: the models' own input resolution
    # JSON of the laws of fields drawn per model (regspace.spaces.hparams, NDS §5; "": none): each model
    # trains with its draw's values (for_draw) in place of those fields, which the hash then leaves out.
    sampled: str = ""
    # Fields added after results were stored: they enter the hash only when they differ from these
    # defaults (schema.HASHED_IF_CHANGED), so every earlier recipe keeps its hash.
    tf32: bool = True  # GPUs sm80+: let cuDNN run fp32 convolutions in TF32 (torch's default); false: full fp32

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.lr > 0, "learning rate must be positive"),
            (self.lr_batch >= 1, "lr_batch must be at least 1"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight decay must be non-negative"),
            (self.bn_weight_decay is None or self.bn_weight_decay >= 0, "BN weight decay must be non-negative"),
            (0 <= self.warmup_epochs <= self.epochs, "warm-up epochs must be between 0 and epochs"),
            (0 <= self.label_smoothing < 1, "label smoothing must be in [0, 1)"),
            (self.augment in AUGMENTS, f"augment must be one of {', '.join(AUGMENTS)}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.conv_init in CONV_INITS, f"conv_init must be one of {', '.join(CONV_INITS)}"),
            (self.grad_clip is None or self.grad_clip > 0, "grad_clip must be positive"),
            (self.train_size is None or self.train_size >= 1, "train size must be at least 1"),
            (self.val_size >= 1, "validation size must be at least 1 (errors are compared on a validation split)"),
            (self.test_size is None or self.test_size >= 0, "test size must be non-negative"),
            (self.resolution is None or 4 <= self.resolution <= 4096, "resolution must be between 4 and 4096"),
            (isinstance(self.tf32, bool), "tf32 must be true or false"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageProblem(f"recipe: {message}")
        if self.sampled:
            laws = hp.from_json(self.sampled)
            object.__setattr__(self, "sampled", hp.to_json(laws))  # canonical text: one hash per set of laws
            for p in laws:  # every value a law can draw must make a valid recipe
                for edge in p.values if p.kind == "choice" else (p.low, p.high):
                    try:
                        dataclasses.replace(self, sampled="", **{p.name: edge})
                    except UsageProblem as e:
                        reach = f"recipe: {p.name} drawn {p.describe()} reaches {edge:g}"
                        raise UsageProblem(f"{reach}: {e.line().removeprefix('recipe: ')}") from None

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / self.lr_batch

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def hash(self) -> str:
        """12 hex digits over every field except the preset's name (a renamed preset is the same recipe) and
        the seed: the seeds of one recipe are replicates of it, told apart by the results' ``seed`` column
        (schema.RESULT_KEY). A recipe that draws fields per model hashes its laws (``sampled``) in place of
        those fields' values. Defined once in schema.recipe_hash, which stored recipe JSON also goes through."""
        return recipe_hash(self.to_dict())

    @property
    def run_key(self) -> str:
        """One seed's training of this recipe: the hash, with ``-s<seed>`` for a seed other than 0 (what
        claims and sweeps keep apart)."""
        return run_key(self.hash, self.seed)

    @property
    def laws(self) -> hp.Laws:
        """The laws of the fields drawn per model (() when none)."""
        return hp.from_json(self.sampled)

    def with_laws(self, laws: hp.Laws) -> Recipe:
        """This recipe with ``laws`` drawn per model (replacing any it had)."""
        return dataclasses.replace(self, sampled=hp.to_json(tuple(sorted(laws, key=lambda p: p.name))))

    def for_draw(self, values: dict[str, float], model_id: str = "the model") -> Recipe:
        """The recipe one model trains with: the drawn fields set to its draw's ``values`` ({field: value};
        the same hash, since the hash leaves drawn fields out). Raises RegspaceError when the model's drawn
        fields are not the ones this recipe draws: a drawn-lr model never trains with a fixed lr, nor the
        reverse."""
        drawn = {p.name for p in self.laws}
        if set(values) != drawn:
            have = ", ".join(sorted(values)) or "none"
            want = ", ".join(sorted(drawn)) or "none"
            raise RegspaceError(
                f"{model_id} was drawn with recipe fields {have}, but recipe {self.name} {self.hash} draws {want}",
                hint="train drawn fields with the recipe (or study) that declared their laws",
            )
        return dataclasses.replace(self, **{k: float(v) for k, v in values.items()}) if values else self

    def replace(self, **overrides) -> Recipe:
        """This recipe with fields changed (None: unchanged). Raises UsageProblem (one line) for an unknown
        field or a value of the wrong type (a study file's ``lr = "fast"``, ``epochs = 1.5``)."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = set(overrides) - set(fields)
        if unknown:
            raise UsageProblem(f"recipe: unknown field(s) {', '.join(sorted(unknown))}")
        for k, v in overrides.items():
            if v is not None:
                _check_type(k, fields[k].type, v)
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


_TYPES = {"bool": ((bool,), "true or false"), "int": ((int,), "an integer"), "float": ((int, float), "a number"),
          "str": ((str,), "text")}  # fmt: skip


def _check_type(name: str, annotation: str, value) -> None:
    """Raises UsageProblem unless ``value`` has the type the field ``name`` is annotated with (``int``,
    ``float | None``, …: the dataclass's annotations are strings here). A bool is not a number."""
    kind = str(annotation).replace(" | None", "").strip()
    if kind not in _TYPES:
        return
    types, words = _TYPES[kind]
    if isinstance(value, bool) != (kind == "bool") or not isinstance(value, types):
        raise UsageProblem(f"recipe: {name} must be {words}, not {value!r}")


def recipe_for_rows(recipe: Recipe, rows: list[dict]) -> Recipe:
    """The recipe that trains these model rows (models-table dicts with the ``hparams`` column): ``recipe``
    itself when its laws are the rows' (none, or the same); when it draws nothing and every row was drawn
    with the same laws (a space file's [hparams]), ``recipe`` with those laws. Raises RegspaceError when the
    rows disagree with each other or with a recipe that draws fields: a result is never recorded under a
    recipe whose laws did not draw its values."""
    texts = {hp.to_json(hp.from_json(r.get("hparams"))) for r in rows}
    if not texts or texts == {recipe.sampled}:
        return recipe
    if len(texts) > 1:
        raise RegspaceError(
            "these models were drawn with different recipe-field laws: "
            + " | ".join(hp.describe(hp.from_json(t)) or "none" for t in sorted(texts)),
            hint="train each space on its own (--spaces)",
        )
    (text,) = texts
    if not recipe.sampled:
        return recipe.with_laws(hp.from_json(text))
    raise RegspaceError(
        f"the models were drawn with {hp.describe(hp.from_json(text)) or 'no recipe fields'}, but recipe "
        f"{recipe.name} {recipe.hash} draws {hp.describe(recipe.laws)}",
        hint="train drawn fields with the recipe (or study) that declared their laws",
    )


RECIPES = {
    # CPU proxy regime: Fashion-MNIST, 10k training images, 3 epochs, zero-initialised final BN of
    # each block (deep narrow nets barely train in 3 epochs without it). lr 0.4 and wd 5e-4 won a
    # 16-trial TPE study (experiments/tune_quick.py); half an epoch of linear warm-up trims the tail
    # across 16 designs of 4 spaces at no cost (experiments/tune_tail.py). experiments/README.md has both.
    "quick": Recipe(),
    # The other presets keep the reference's plain BN init.
    # DDS §3: 10 epochs, SGD-Nesterov, cosine, no warm-up, wd 5e-5, lr 0.05 at batch 128 (ImageNet-sized data).
    "dds": Recipe(
        name="dds",
        dataset="imagefolder",
        epochs=10,
        batch_size=128,
        lr=0.05,
        lr_batch=128,
        weight_decay=5e-5,
        warmup_epochs=0.0,
        augment="flip+crop",
        train_size=None,
        val_size=50_000,
        zero_init_final_gamma=False,
    ),
    # The reference CIFAR-10 sweeps (pycls configs/sweeps/cifar): 50 epochs, lr 1.0 at batch 1024,
    # wd 5e-4 (none on BN), 5 warm-up epochs, label smoothing 0.1, flip + 4-pixel pad-and-crop.
    "cifar": Recipe(
        name="cifar",
        dataset="cifar10",
        epochs=50,
        batch_size=1024,
        lr=1.0,
        lr_batch=1024,
        weight_decay=5e-4,
        bn_weight_decay=0.0,
        warmup_epochs=5,
        label_smoothing=0.1,
        augment="flip+crop",
        train_size=None,
        val_size=5_000,
        zero_init_final_gamma=False,
    ),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name.lower()]
    except KeyError:
        raise UsageProblem(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}") from None


def parse_seeds(text: str) -> list[int]:
    """Training seeds from ``--seeds``: distinct non-negative integers, comma-separated ("0,1,2"), in the
    order given. Raises UsageProblem for anything else."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageProblem(f"--seeds takes comma-separated integers such as 0,1,2, not {text!r}") from None
    if not seeds or any(not 0 <= s < 2**31 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageProblem(f"--seeds takes distinct integers from 0 to 2^31 - 1, such as 0,1,2, not {text!r}")
    return seeds


# -- a sweep's recipe: every worker of a sweep trains with the same one ---------------------------

SWEEP_RECIPE_ATTR = "recipe"  # the sweep attribute holding its recipe (JSON of Recipe.to_dict)


def sweep_recipe(sweep) -> Recipe | None:
    """The recipe a sweep trains with, None before its first worker. ``sweep``: a
    regspace.sweep.adapter.Sweep (anything with ``get_attr``)."""
    text = sweep.get_attr(SWEEP_RECIPE_ATTR)
    return Recipe(**json.loads(text)) if text else None


def agree_recipe(sweep, recipe: Recipe, *, explicit: bool) -> Recipe:
    """The recipe this worker trains with: the sweep's (the first worker sets it). A worker given other
    training options explicitly is refused (RegspaceError); one given none follows the sweep."""
    stored = sweep_recipe(sweep)
    if stored is None:
        sweep.set_attr(SWEEP_RECIPE_ATTR, recipe.to_json(), "writing the sweep's recipe")
        return recipe
    if stored.run_key != recipe.run_key and explicit:
        raise RegspaceError(
            f"sweep {sweep.name!r} trains with recipe {stored.name} {stored.run_key}, not {recipe.run_key}",
            hint="give the same training options, none (to use the sweep's), or another --sweep",
        )
    return stored
