"""What every design space offers the sampler, the store and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from regspace.design import DesignBatch, Stem, block_of
from regspace.spaces.distributions import Param


@dataclass(frozen=True)
class Space:
    """A design space: parameter distributions, constraints, and how a design is derived.

    Subclasses implement :meth:`draw` (raw parameters for n candidates, as arrays) and
    :meth:`derive` (the designs those parameters give, plus a mask of candidates that satisfy the
    space's structural constraints). Complexity constraints are applied by the sampler.
    """

    name: str
    title: str
    se_ratio: float
    dof: int
    aliases: tuple[str, ...] = ()
    description: str = ""
    budget: object = None  # a regspace.presets.Budget: this space's default complexity constraints, if any
    block: str | None = None  # the block kind (regspace.blocks); None: Y when se_ratio > 0, else X
    activation: str | None = None  # relu | silu; None: the block's default (silu for MB, else relu)
    head_width: int = 0  # a 1×1 head conv of this width before pooling (0: none)
    strides: tuple[int, ...] = ()  # one per stage (1 or 2); (): every stage at stride 2 (DDS §3.1)
    # The activation as a choice (TOML [params.act]): drawn per model, i.i.d., after the space's other
    # parameters (so the draws of a space without it are unchanged); None: ``activation`` for every model.
    act: Param | None = None
    # Laws of recipe fields drawn with each model (TOML [hparams.lr]; regspace.spaces.hparams), sorted by field.
    hparams: tuple[Param, ...] = ()

    family = "?"

    def __post_init__(self):
        object.__setattr__(self, "block", block_of(self.block, self.se_ratio))

    def params(self) -> list[Param]:  # pragma: no cover - abstract
        raise NotImplementedError

    def draw(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def derive(self, raw: dict[str, np.ndarray], stem: Stem) -> tuple[DesignBatch, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def columns(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:  # pragma: no cover
        """The sampled parameters as store columns (see regspace.store.MODEL_PARAM_COLUMNS)."""
        raise NotImplementedError

    def constraints(self) -> list[str]:
        return []

    def for_block(self, block: str) -> Space:
        """This space's laws made ready for ``block`` (a user-defined space that changes the block kind):
        here unchanged; a space whose parameters depend on the block (NDS's b, g) overrides it."""
        return self

    def draw_act(self, rng: np.random.Generator, raw: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
        """``raw`` with ``act`` (n activation names) drawn when the space has the choice; call after
        drawing the other parameters."""
        if self.act is not None:
            raw["act"] = self.act.draw(rng, n)
        return raw

    def activations(self, raw: dict[str, np.ndarray]):
        """The activation for DesignBatch: the drawn (N,) names, or the space's one (None: the block's)."""
        return raw.get("act", self.activation)

    def stage_strides(self, n: int, k: int) -> np.ndarray | None:
        """(n, k) strides of n designs of k stages, or None for the default (2 everywhere)."""
        return np.broadcast_to(np.asarray(self.strides), (n, k)) if self.strides else None

    def act_rows(self) -> list[tuple[str, str]]:
        """The activation's row for :meth:`parameter_rows`, when it is drawn."""
        if self.act is None:
            return []
        return [("act", "{" + ", ".join(map(str, self.act.values)) + "} per model")]

    def parameter_rows(self) -> list[tuple[str, str]]:  # pragma: no cover - abstract
        """(parameter, distribution and domain) pairs, for `regspace spaces`."""
        raise NotImplementedError
