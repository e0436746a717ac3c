"""The values that cross between the training parent and its workers: a task and a result.

A :class:`Task` carries the model's frozen :class:`~regspace.design.Design` and
:class:`~regspace.design.Context`, built from a stored model row by :func:`Task.from_row` through the
row codec (:mod:`regspace.schema`). A :class:`Result` is one row of the results table: its fields are
generated from :data:`regspace.schema.RESULTS_SCHEMA`, so a column added there is a field here. It is
built only through its ``ok`` / ``diverged`` / ``failed`` constructors, so every outcome has the fields
its status needs. No torch here: the parent imports this module.
"""

from __future__ import annotations

import dataclasses
import datetime
from dataclasses import dataclass

from regspace.design import Context, Design
from regspace.schema import (
    RESULTS_SCHEMA,
    STATUSES,
    context_from_row,
    design_from_row,
    hparams_from_row,
    python_type,
)

__all__ = ["STATUSES", "Result", "Task"]


@dataclass(frozen=True)
class Task:
    """One model to train: its id, design, input context, and the recipe fields drawn with it
    ((field, value) pairs of schema.HPARAM_COLUMNS; () when the recipe fixes them all)."""

    model_id: str
    design: Design
    context: Context
    hparams: tuple[tuple[str, float], ...] = ()

    @classmethod
    def from_row(cls, row: dict) -> Task:
        """The model of a stored row (the models table's columns, at least schema.MODEL_COLUMNS' design and
        context; drawn recipe fields when present)."""
        return cls(row["model_id"], design_from_row(row), context_from_row(row), hparams_from_row(row))


class _Outcome:
    """What every Result does; its fields come from the results schema (see :data:`Result`)."""

    @classmethod
    def ok(cls, model_id: str, *, error: float, min_error: float, epochs: int, **fields):
        return cls(model_id=model_id, status="ok", error=error, min_error=min_error, epochs=epochs, **fields)

    @classmethod
    def diverged(cls, model_id: str, *, reason: str, epochs: int, **fields):
        return cls(model_id=model_id, status="diverged", reason=reason, epochs=epochs, **fields)

    @classmethod
    def failed(cls, model_id: str, *, reason: str, epochs: int = 0, **fields):
        return cls(model_id=model_id, status="failed", reason=reason, epochs=epochs, **fields)

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown result status {self.status!r}")
        if self.finished_at is None:
            object.__setattr__(self, "finished_at", datetime.datetime.now(datetime.timezone.utc))

    def row(self) -> dict:
        """The results-table row: every column of RESULTS_SCHEMA (list columns as lists)."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, tuple):
                out[k] = list(v)
        return out


_REQUIRED = ("model_id", "recipe_hash", "status")  # the key and the outcome; every other column may be null


def _field(f):
    if f.name in _REQUIRED:
        return (f.name, python_type(f.type))
    return (f.name, python_type(f.type) | None, dataclasses.field(default=None))


# One training outcome: exactly the columns of the results table, in its order (list columns are tuples).
Result = dataclasses.make_dataclass("Result", [_field(f) for f in RESULTS_SCHEMA], bases=(_Outcome,), frozen=True)
Result.__module__ = __name__  # workers pickle results: pickle finds the class by module and name
Result.__doc__ = "One training outcome: exactly the columns of the results table (regspace.schema.RESULTS_SCHEMA)."
