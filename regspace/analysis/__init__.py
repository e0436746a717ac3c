"""Analyses of SPEC §6 as pure functions over numpy arrays and pandas frames (no plotting)."""
