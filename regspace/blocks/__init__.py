"""Block kinds: what a stage of a network is made of (docs/design.md §1, "Adding a block type").

Each block kind lives in one module of this package, with its exact numpy counter and its ``nn.Module``
builder side by side; the module lists its kinds in ``KINDS``. The registry below finds them by scanning
the package, so a new block is one new module. :mod:`regspace.blocks.network` walks a design's stages
once for both counting and building. Importing this package (or counting) never imports torch: the
builders import :mod:`regspace.blocks.torch_layers` when called.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from regspace.errors import UsageProblem

# Modules of this package that hold no block kind.
_INFRASTRUCTURE = {"layers", "network", "torch_layers"}


@dataclass(frozen=True)
class BlockKind:
    """One block kind.

    ``count(cx, w_in, w_out, stride, p) -> Cx`` and ``build(w_in, w_out, stride, p) -> nn.Module`` describe
    one block; ``p`` maps the design's per-stage and per-network parameters (design.BLOCK_PARAMS: ``b``, ``g``,
    ``se_ratio``, ``k``, ``e``, ``activation``) to
    this stage's values: scalars, or (N,) arrays when counting a batch (the counter must be vectorised).
    ``check(se_ratio)`` returns why a design with this block is invalid, or None. ``id_text`` is what the
    block adds to a design's canonical text (docs/design.md §1): empty for X and Y, whose ids predate
    the block field (their ``se=`` already tells them apart). ``activation`` is the default activation of
    designs with this block (relu; silu for MB).
    """

    name: str
    description: str
    count: Callable
    build: Callable
    check: Callable = lambda se_ratio: None
    id_text: str | None = None
    activation: str = "relu"  # the activation of a design that names none

    def canonical(self) -> str:
        return f";block={self.name}" if self.id_text is None else self.id_text


_REGISTRY: dict[str, BlockKind] = {}


def _discover() -> dict[str, BlockKind]:
    if not _REGISTRY:
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name.startswith("_") or info.name in _INFRASTRUCTURE:
                continue
            for kind in importlib.import_module(f"{__name__}.{info.name}").KINDS:
                if kind.name in _REGISTRY:
                    raise RuntimeError(f"block kind {kind.name!r} is defined twice")
                _REGISTRY[kind.name] = kind
    return _REGISTRY


# How listings order the kinds (the papers' order, simplest first); a kind not named here comes after.
_ORDER = ("V", "R", "X", "Y", "MB")


def block_names() -> list[str]:
    """The registered block kinds' names: ['V', 'R', 'X', 'Y', 'MB'] (then any others by module name)."""
    names = list(_discover())
    return sorted(names, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER))


def get_block(name: str) -> BlockKind:
    """The block kind called ``name``; UsageProblem names the known ones when there is none."""
    kinds = _discover()
    try:
        return kinds[name]
    except (KeyError, TypeError):
        raise UsageProblem(f"unknown block {name!r}: choose one of {', '.join(kinds)}") from None
