"""Training recipes (docs/design.md §6): every hyper-parameter in one frozen value, hashed with each result.

No torch here: recipes are chosen, printed and hashed by commands that do not train.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from regspace.errors import RegspaceError, UsageProblem

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
    # Fields added after results were stored: they enter the hash only when they differ from these
    # defaults (HASHED_IF_CHANGED), so every earlier recipe keeps its hash.
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
        the fields of HASHED_IF_CHANGED that keep their default."""
        fields = {k: v for k, v in self.to_dict().items() if k != "name" and HASHED_IF_CHANGED.get(k, _NONE) != v}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]

    def replace(self, **overrides) -> Recipe:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise UsageProblem(f"recipe: unknown field(s) {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


_NONE = object()
# Fields added since results were first stored, with the default under which they are left out of the hash.
HASHED_IF_CHANGED = {"tf32": True}

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
    if stored.hash != recipe.hash and explicit:
        raise RegspaceError(
            f"sweep {sweep.name!r} trains with recipe {stored.name} {stored.hash}, not {recipe.hash}",
            hint="give the same training options, none (to use the sweep's), or another --sweep",
        )
    return stored
