"""The values that cross between the training parent and its workers: a task and a result.

A :class:`Task` carries the model's frozen :class:`~regspace.design.Design` and
:class:`~regspace.design.Context`, built from a stored model row by :func:`Task.from_row` (the one place
that reads a row's design columns). A :class:`Result` is one row of the results table; it is built
only through its ``ok`` / ``diverged`` / ``failed`` constructors, so every outcome has the fields its
status needs. No torch here: the parent imports this module.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass

from regspace.design import STEMS, Context, Design

STATUSES = ("ok", "diverged", "failed")


@dataclass(frozen=True)
class Task:
    """One model to train: its id, design and input context."""

    model_id: str
    design: Design
    context: Context

    @classmethod
    def from_row(cls, row: dict) -> Task:
        """The model of a stored row (the models table's columns)."""
        design = Design(
            tuple(int(w) for w in row["stage_widths"]),
            tuple(int(d) for d in row["stage_depths"]),
            tuple(float(b) for b in row["stage_bottleneck_ratios"]),
            tuple(int(g) for g in row["stage_group_widths"]),
            float(row["se_ratio"]),
            STEMS[row["stem"]],
        )
        context = Context(int(row["resolution"]), int(row["in_channels"]), int(row["num_classes"]))
        return cls(row["model_id"], design, context)


@dataclass(frozen=True)
class Result:
    """One training outcome: exactly the columns of the results table (regspace.store.RESULTS_SCHEMA)."""

    model_id: str
    recipe_hash: str
    status: str  # ok | diverged | failed
    error: float | None = None  # final validation top-1 error, %
    min_error: float | None = None
    test_error: float | None = None
    train_loss: float | None = None
    epochs: int | None = None
    reason: str | None = None
    train_seconds: float | None = None
    images_per_second: float | None = None
    peak_memory_mb: float | None = None
    device: str | None = None
    device_kind: str | None = None
    precision: str | None = None
    data_layout: str | None = None
    seed: int | None = None
    dataset: str | None = None
    split: str | None = None
    recipe: str | None = None
    torch_version: str | None = None
    lightning_version: str | None = None
    regspace_version: str | None = None
    host: str | None = None
    val_errors: tuple[float, ...] | None = None  # validation error after each epoch, % (the learning curve)
    train_losses: tuple[float, ...] | None = None  # mean training loss of each epoch
    finished_at: datetime.datetime | None = None

    @classmethod
    def ok(cls, model_id: str, *, error: float, min_error: float, epochs: int, **fields) -> Result:
        return cls(model_id=model_id, status="ok", error=error, min_error=min_error, epochs=epochs, **fields)

    @classmethod
    def diverged(cls, model_id: str, *, reason: str, epochs: int, **fields) -> Result:
        return cls(model_id=model_id, status="diverged", reason=reason, epochs=epochs, **fields)

    @classmethod
    def failed(cls, model_id: str, *, reason: str, epochs: int = 0, **fields) -> Result:
        return cls(model_id=model_id, status="failed", reason=reason, epochs=epochs, **fields)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown result status {self.status!r}")
        if self.finished_at is None:
            object.__setattr__(self, "finished_at", datetime.datetime.now(datetime.timezone.utc))

    def row(self) -> dict:
        out = dataclasses.asdict(self)
        for k in ("val_errors", "train_losses"):
            if out[k] is not None:
                out[k] = list(out[k])
        return out
