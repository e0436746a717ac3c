"""Design spaces by name: X_a … X_e, Y_a … Y_e, RegNet, RegNetX, RegNetY (spaces.builtin), or a TOML
file (spaces.custom)."""

from regspace.spaces.anynet import AnyNetSpace
from regspace.spaces.base import Space
from regspace.spaces.builtin import SPACES, list_spaces, resolve_names
from regspace.spaces.custom import get_space
from regspace.spaces.regnet import RegNetSpace

__all__ = ["SPACES", "Space", "AnyNetSpace", "RegNetSpace", "get_space", "list_spaces", "resolve_names"]
