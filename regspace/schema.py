"""The row codec: the store's two tables, their keys, and the one conversion between values and rows.

Every column of the store is named here once (docs/design.md, "The store"):

- :data:`MODELS_SCHEMA`: one row per (space, network) and sampling call, with the draws of that call
  that produced it; :data:`MODEL_ROW_KEY` keys a row, :data:`MODEL_KEY` a network of a space.
- :data:`RESULTS_SCHEMA`: one training outcome per (model_id, recipe_hash, seed) (:data:`RESULT_KEY`): the
  seeds of one recipe share its hash.
  :class:`regspace.train.records.Result` is built from this schema, field by field.

The column groups (:data:`DESIGN_COLUMNS`, :data:`CONTEXT_COLUMNS`, :data:`DRAW_COLUMNS`,
:data:`MODEL_COLUMNS`) are what the rest of regspace reads, so a column added to a table is added to
every reader that needs it in one place. :func:`design_row` / :func:`design_from_row` (and the context
pair) are the only conversion between a :class:`~regspace.design.Design` and its columns.

numpy and pyarrow only (no torch, no store I/O): sampling imports this module.
"""

from __future__ import annotations

import datetime
import hashlib
import json

import numpy as np
import pyarrow as pa

from regspace.design import BLOCK_PARAMS, MAX_STAGES, Context, Design, get_stem

# 2: models carry multiplicity and draw_indices (i.i.d. populations); results device_kind, precision.
# 3: results data_layout (memory | mapped). Older parts read with the new columns null.
# 4: results val_errors and train_losses, one value per epoch (learning curves).
# 5: models stage_strides, stage_kernels, stage_expansions, activation, head_width, stem_width (block
#    families V, R, MB; null in older rows: the defaults) and per-stage sampled columns up to 7 stages, k_i, e_i.
# 6: models regime (the flops band of a study's regime, e.g. "2M:4M"; null outside regimes); results
#    inference_images_per_second (forward-only throughput measured after training, on its device).
#    Results are keyed by (model_id, recipe_hash, seed): the recipe hash leaves the seed out (seed-0 hashes are
#    unchanged). Older parts' rows of another seed are re-hashed on read; a null seed reads as the recipe's.
#    Models lr, weight_decay, momentum, label_smoothing (recipe fields drawn per model, NDS §5; null: the
#    recipe's own value) and hparams (JSON of the laws they were drawn from; null: none drawn).
#    Results peak_reserved_mb (the CUDA allocator's reserved peak), device_workers (workers that shared the
#    model's device) and tf32 (whether fp32 convolutions could run in TF32). Older parts read them as null.
SCHEMA_VERSION = 6

# The spaces' sampled parameters (Space.columns): AnyNet's per-stage d_i, w_i, b_i, g_i (and MBConv's k_i,
# e_i), up to 7 stages, and RegNet's d, w0, wa, wm, b, g. A space fills its own and leaves the others null.
_STAGES = range(1, MAX_STAGES + 1)
STAGE_PARAMS = "dwbgke"  # per-stage sampled parameters: depth, width, bottleneck ratio, group width, k, e
# Their columns, stage by stage within each parameter (d1..d7, w1..w7, …): what analyses and plots scan.
STAGE_PARAM_COLUMNS = tuple(f"{p}{i}" for p in STAGE_PARAMS for i in _STAGES)
MODEL_PARAM_COLUMNS = (
    [
        ("d", pa.int64()),
        ("w0", pa.int64()),
        ("wa", pa.float64()),
        ("wm", pa.float64()),
        ("b", pa.float64()),
        ("g", pa.int64()),
    ]
    + [(f"d{i}", pa.int64()) for i in _STAGES]
    + [(f"w{i}", pa.int64()) for i in _STAGES]
    + [(f"b{i}", pa.float64()) for i in _STAGES]
    + [(f"g{i}", pa.int64()) for i in _STAGES]
    + [(f"k{i}", pa.int64()) for i in _STAGES]
    + [(f"e{i}", pa.float64()) for i in _STAGES]
)

# Recipe fields a study or space may draw per model (NDS §5) instead of fixing them in the recipe: one
# float column each, named as the recipe field (regspace.spaces.hparams).
HPARAM_COLUMNS = ("lr", "weight_decay", "momentum", "label_smoothing")


def _param_column(attribute: str, per_stage: bool) -> str:
    """The column of a block parameter (design.BLOCK_PARAMS): ``stage_<attribute>`` (a list) when it has
    one value per stage, else ``<attribute>``."""
    return f"stage_{attribute}" if per_stage else attribute


# (column, Design attribute, value type, one per stage?) of every block parameter, in BLOCK_PARAMS order.
_PARAM_COLUMNS = [
    (_param_column(attribute, per_stage), attribute, dtype, per_stage)
    for attribute, dtype, per_stage in BLOCK_PARAMS.values()
]


def _block_param_fields() -> list[tuple[str, pa.DataType]]:
    """The models-table columns of the block parameters, from design.BLOCK_PARAMS (declared once, there).
    Listed in the order stores have always had them (g before b), new parameters after."""
    arrow = {np.int64: pa.int64(), np.float64: pa.float64(), str: pa.string()}
    fields = {
        _param_column(attribute, per_stage): pa.list_(arrow[dtype]) if per_stage else arrow[dtype]
        for attribute, dtype, per_stage in BLOCK_PARAMS.values()
    }
    first = [c for c in ("stage_group_widths", "stage_bottleneck_ratios", "se_ratio") if c in fields]
    return [(c, fields[c]) for c in first + [c for c in fields if c not in first]]


# Design fields that are not block parameters, written since schema 5: (column, Design attribute, arrow
# type); a null (older rows) reads as the default (stride 2 per stage, no head conv, the stem's own width).
_BODY_COLUMNS = (
    ("stem_width", "stem", pa.int64()),
    ("stage_strides", "strides", pa.list_(pa.int64())),
    ("head_width", "head_width", pa.int64()),
)

MODELS_SCHEMA = pa.schema(
    [
        ("model_id", pa.string()),
        ("space", pa.string()),
        ("block", pa.string()),
        ("flops", pa.int64()),
        ("params", pa.int64()),
        ("acts", pa.int64()),
        ("depth", pa.int64()),
        ("stage_widths", pa.list_(pa.int64())),
        ("stage_depths", pa.list_(pa.int64())),
        *_block_param_fields(),
        ("stem", pa.string()),
        *[(c, t) for c, _, t in _BODY_COLUMNS],
        ("resolution", pa.int64()),
        ("in_channels", pa.int64()),
        ("num_classes", pa.int64()),
        ("preset", pa.string()),
        *MODEL_PARAM_COLUMNS,
        *[(c, pa.float64()) for c in HPARAM_COLUMNS],
        ("hparams", pa.string()),  # JSON: the laws of the drawn recipe fields (regspace.spaces.hparams); null: none
        ("seed", pa.int64()),
        ("draw_index", pa.int64()),  # the first draw (candidate index in the seeded stream) of this row
        ("multiplicity", pa.int64()),  # how many accepted draws of this row's call gave this network
        ("draw_indices", pa.list_(pa.int64())),  # all of them
        ("regime", pa.string()),  # a study's flops regime ("2M:4M"): one population per (space, regime)
        ("sampled_at", pa.timestamp("us", tz="UTC")),
        ("regspace_version", pa.string()),
    ]
)

RESULTS_SCHEMA = pa.schema(
    [
        ("model_id", pa.string()),
        ("recipe_hash", pa.string()),
        ("status", pa.string()),  # ok | diverged | failed
        ("error", pa.float64()),  # final validation top-1 error, percent
        ("min_error", pa.float64()),  # minimum over epochs of the validation error, percent
        ("test_error", pa.float64()),  # test-set top-1 error, percent (never used to compare spaces)
        ("train_loss", pa.float64()),
        ("epochs", pa.int64()),  # epochs completed
        ("reason", pa.string()),  # why a model diverged or failed
        ("train_seconds", pa.float64()),
        ("images_per_second", pa.float64()),
        ("peak_memory_mb", pa.float64()),
        ("device", pa.string()),
        ("device_kind", pa.string()),  # cpu | cuda
        ("precision", pa.string()),  # the precision actually used: bf16-mixed | 16-mixed | 32-true
        ("data_layout", pa.string()),  # memory | mapped: where the worker read its images from
        ("seed", pa.int64()),  # the training seed (init and data order); part of the key since schema 6
        ("dataset", pa.string()),
        ("split", pa.string()),  # JSON: train/val sizes, split seed, checksum
        ("recipe", pa.string()),  # JSON: every hyper-parameter
        ("torch_version", pa.string()),
        ("lightning_version", pa.string()),
        ("regspace_version", pa.string()),
        ("host", pa.string()),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("val_errors", pa.list_(pa.float64())),  # validation error after each epoch, percent
        ("train_losses", pa.list_(pa.float64())),  # mean training loss of each epoch
        ("inference_images_per_second", pa.float64()),  # forward only, fixed batch, warm (fit.inference_speed)
        # since schema 6 (null in older rows):
        ("peak_reserved_mb", pa.float64()),  # GPU: the allocator's peak reserved memory (>= peak_memory_mb)
        ("device_workers", pa.int64()),  # worker processes the run placed on this model's device (it included)
        ("tf32", pa.bool_()),  # GPU: cuDNN could run fp32 convolutions in TF32 (sm80+ with it allowed)
    ]
)

# Keys of a table's rows: copies of one key are the same row written twice (readers keep one).
# A model's rows are one per (space, model_id, seed, first draw): the draws of one stream never overlap.
MODEL_ROW_KEY = ("space", "model_id", "seed", "draw_index")
MODEL_KEY = ("space", "model_id")  # one network of one space: its rows merge into one (multiplicity summed)
RESULT_KEY = ("model_id", "recipe_hash", "seed")  # a recipe's hash leaves its seed out (Recipe.hash)
TABLES = {"models": (MODELS_SCHEMA, list(MODEL_ROW_KEY)), "results": (RESULTS_SCHEMA, list(RESULT_KEY))}



# Recipe fields added after results were first stored, with the default under which the hash leaves them
# out: every recipe written before them keeps its hash.
HASHED_IF_CHANGED = {"tf32": True}


def recipe_hash(fields: dict) -> str:
    """A result's ``recipe_hash``: 12 hex digits over a recipe's fields (Recipe.to_dict, or the stored recipe
    JSON) except the preset's name (a renamed preset is the same recipe) and the seed, which is hashed as 0:
    the seeds of one recipe share its hash (RESULT_KEY tells them apart), and a seed-0 recipe keeps the
    hash it had when the seed was hashed too."""
    kept = {k: v for k, v in fields.items() if k != "name"}
    kept["seed"] = 0
    # Fields drawn per model (NDS §5) are hashed as their laws (``sampled``), not the recipe's fixed values;
    # a recipe that draws nothing hashes exactly the fields it always did.
    sampled = kept.pop("sampled", "")
    if sampled:
        kept["sampled"] = sampled
        for name in json.loads(sampled):
            kept.pop(name, None)
    for name, default in HASHED_IF_CHANGED.items():  # fields added later: hashed only when changed
        if name in kept and kept[name] == default:
            del kept[name]
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:12]


def result_seed(seed: int | None, recipe_fields: dict) -> int:
    """A result's training seed as RESULT_KEY reads it: its own, else its recipe's, else 0 (a row written
    without one: an older part, or a trial finished through the queue)."""
    return int(seed) if seed is not None else int(recipe_fields.get("seed") or 0)


def run_key(recipe_hash: str, seed: int | None) -> str:
    """One seed's training of a recipe, as status tables, claims and sweeps name it: the hash, with
    ``-s<seed>`` for a seed other than 0 (a null seed is 0)."""
    return recipe_hash if not seed else f"{recipe_hash}-s{seed}"


STATUSES = ("ok", "diverged", "failed")
# What "done" means, defined once: a result with one of these statuses settles a model for its recipe, and
# the first one written wins. A `failed` result does not settle it: `--retry-failed` trains the model
# again, and a later ok/diverged result supersedes the failed one.
SETTLED = ("ok", "diverged")

# -- column groups: what each reader needs ----------------------------------------------------------
# A Design's columns, in the order design_row writes them (`regspace describe` prints them in this order).
DESIGN_COLUMNS = (
    "stage_widths",
    "stage_depths",
    *(_param_column(attribute, per_stage) for attribute, _, per_stage in BLOCK_PARAMS.values()),
    "block",
    "stem",
    *(c for c, _, _ in _BODY_COLUMNS),
)
CONTEXT_COLUMNS = ("resolution", "in_channels", "num_classes")
COMPLEXITY_COLUMNS = ("flops", "params", "acts")
# Which draws of the seeded stream gave a row's network (population.py reads these).
DRAW_COLUMNS = ("space", "model_id", "seed", "draw_index", "multiplicity", "draw_indices", "regime")
# What training reads of a model: the Task (design and context) and the cost that plans the workers.
# Drawn recipe fields (HPARAM_COLUMNS, "hparams") are the Task's too: the model trains with its own values.
MODEL_COLUMNS = ["model_id", "space", *DESIGN_COLUMNS, *CONTEXT_COLUMNS, *COMPLEXITY_COLUMNS, *HPARAM_COLUMNS,
                 "hparams"]  # fmt: skip


def design_row(design: Design) -> dict:
    """A design's columns (:data:`DESIGN_COLUMNS`, in that order): per-stage lists, shared block parameters
    (the SE ratio), block, stem name."""
    row = {"stage_widths": list(design.widths), "stage_depths": list(design.depths)}
    for column, attribute, _, per_stage in _PARAM_COLUMNS:
        value = getattr(design, attribute)
        row[column] = list(value) if per_stage else value
    body = {"stem_width": design.stem.width, "stage_strides": list(design.strides), "head_width": design.head_width}
    return {**row, "block": design.block, "stem": design.stem.name, **body}


def design_columns(batch) -> dict:
    """The design columns (:data:`DESIGN_COLUMNS`) of a :class:`~regspace.design.DesignBatch`'s N designs,
    each a list of N values: the vectorised :func:`design_row`, for the sampler."""
    n = len(batch)
    cols = {"stage_widths": batch.widths.tolist(), "stage_depths": batch.depths.tolist()}
    for column, attribute, dtype, per_stage in _PARAM_COLUMNS:
        value = getattr(batch, attribute)
        if per_stage:
            cols[column] = value.tolist()
        elif np.ndim(value) == 1:  # drawn per row (the activation of a space with [params.act])
            cols[column] = [_scalar(dtype, v) for v in value]
        else:
            cols[column] = [_scalar(dtype, value)] * n
    body = {
        "stem_width": [batch.stem.width] * n,
        "stage_strides": batch.strides.tolist(),
        "head_width": [batch.head_width] * n,
    }
    return {**cols, "block": [batch.block] * n, "stem": [batch.stem.name] * n, **body}


def _scalar(dtype, value):
    return value if dtype is str else dtype(value).item()


def design_from_row(row) -> Design:
    """The design of a models-table row (a dict, or anything indexable by column name).

    Raises KeyError for a missing design column and regspace.errors.UsageProblem for values no design
    has. A null ``block`` (rows of older stores) leaves the block to the design's default (Y iff se_ratio > 0);
    a null (or absent) column added since (kernels, expansions, activation, strides, head and stem widths)
    reads as its default.
    """
    kwargs = {}
    for column, attribute, dtype, per_stage in _PARAM_COLUMNS:
        value = row[column] if column in _BEFORE_5 else _get(row, column)
        if value is None:
            continue
        kwargs[attribute] = tuple(_scalar(dtype, v) for v in value) if per_stage else _scalar(dtype, value)
    if _get(row, "block") is not None:
        kwargs["block"] = row["block"]
    if _get(row, "stage_strides") is not None:
        kwargs["strides"] = tuple(int(s) for s in row["stage_strides"])
    if _get(row, "head_width") is not None:
        kwargs["head_width"] = int(row["head_width"])
    stem_width = _get(row, "stem_width")
    return Design(
        widths=tuple(int(w) for w in row["stage_widths"]),
        depths=tuple(int(d) for d in row["stage_depths"]),
        stem=get_stem(row["stem"], None if stem_width is None else int(stem_width)),
        **kwargs,
    )


# Design columns every schema has had (a missing one is a KeyError, not a default).
_BEFORE_5 = ("stage_group_widths", "stage_bottleneck_ratios", "se_ratio")


def hparams_from_row(row) -> tuple[tuple[str, float], ...]:
    """The recipe fields drawn with a models-table row: (field, value) pairs of :data:`HPARAM_COLUMNS`
    that are not null (absent or null in rows of schema 5 and older, and where nothing was drawn)."""
    return tuple((c, float(v)) for c in HPARAM_COLUMNS if (v := _get(row, c)) is not None)


def context_row(context: Context) -> dict:
    """A context's columns (:data:`CONTEXT_COLUMNS`)."""
    return {"resolution": context.resolution, "in_channels": context.in_channels, "num_classes": context.num_classes}


def context_from_row(row) -> Context:
    """The input context of a models-table row."""
    return Context(int(row["resolution"]), int(row["in_channels"]), int(row["num_classes"]))


def _get(row, key):
    """row[key], None when absent or null (a pandas row holds NaN for a null number)."""
    try:
        value = row[key]
    except (KeyError, IndexError):
        return None
    return None if isinstance(value, float) and value != value else value


def python_type(arrow_type: pa.DataType) -> type:
    """The Python value type of a column's values (a list column: a tuple, so values stay hashable)."""
    if pa.types.is_list(arrow_type):
        return tuple
    if pa.types.is_timestamp(arrow_type):
        return datetime.datetime
    if pa.types.is_boolean(arrow_type):
        return bool
    if pa.types.is_floating(arrow_type):
        return float
    if pa.types.is_integer(arrow_type):
        return int
    if pa.types.is_string(arrow_type):
        return str
    raise TypeError(f"no Python type for arrow type {arrow_type}")  # pragma: no cover - a new column type


def conform(table: pa.Table | dict, schema: pa.Schema) -> pa.Table:
    """Cast to ``schema``: missing columns become nulls, unknown columns are an error (ValueError)."""
    if isinstance(table, dict):
        n = len(next(iter(table.values()))) if table else 0
        arrays = []
        for f in schema:
            if f.name in table:
                arrays.append(pa.array(table[f.name], type=f.type, from_pandas=True))
            else:
                arrays.append(pa.nulls(n, type=f.type))
        extra = set(table) - set(schema.names)
        if extra:
            raise ValueError(f"unknown column(s) for this table: {sorted(extra)}")
        return pa.Table.from_arrays(arrays, schema=schema)
    if table.schema.equals(schema):
        return table  # already conformed (e.g. by the sampler, which keeps the table for --queue)
    extra = set(table.column_names) - set(schema.names)
    if extra:
        raise ValueError(f"unknown column(s) for this table: {sorted(extra)}")
    arrays = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, type=f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
