"""The built-in design spaces by name: X_a … X_e, Y_a … Y_e, RegNet, RegNetX, RegNetY, RegNetX one design
choice away (DDS §4), NDS's Vanilla, ResNet, ResNeXt-A and ResNeXt-B, and the MBConv ladder MB_a … MB_e
(docs/design.md §2)."""

from __future__ import annotations

import difflib
import re

from regspace.errors import UsageProblem
from regspace.spaces.anynet import ANYNET_SPACES
from regspace.spaces.base import Space
from regspace.spaces.mbconv import MB_SPACES
from regspace.spaces.nds import NDS_SPACES
from regspace.spaces.regnet import DDS_VARIANTS, REGNET_SPACES

SPACES: dict[str, Space] = {s.name: s for s in ANYNET_SPACES + REGNET_SPACES + DDS_VARIANTS + NDS_SPACES + MB_SPACES}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


_LOOKUP = {}
for _space in SPACES.values():
    for _alias in (_space.name, _space.title, *_space.aliases):
        _LOOKUP[_key(_alias)] = _space.name


def list_spaces() -> list[Space]:
    return list(SPACES.values())


def builtin_space(name: str) -> Space:
    """A built-in space by name or alias (case-insensitive); UsageProblem with a did-you-mean otherwise."""
    found = _LOOKUP.get(_key(name))
    if found is None:
        close = difflib.get_close_matches(_key(name), list(_LOOKUP), n=1, cutoff=0.5)
        hint = f"did you mean {_LOOKUP[close[0]]}?" if close else f"known spaces: {', '.join(SPACES)}"
        raise UsageProblem(f"unknown design space {name!r}", hint=hint)
    return SPACES[found]


def resolve_names(names: str | list[str] | None) -> list[str] | None:
    """'X_a,x_b' -> ['X_a', 'X_b']; names not built in are kept as written (spaces from files)."""
    if names is None:
        return None
    if isinstance(names, str):
        names = [n for n in names.split(",")]
    out = []
    for n in names:
        n = n.strip()
        if not n:
            continue
        out.append(_LOOKUP.get(_key(n), n))
    return out
