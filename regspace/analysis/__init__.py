"""Analyses of docs/design.md §7 as pure functions over numpy arrays and pandas frames (no plotting)."""
