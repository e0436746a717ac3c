"""Figures (matplotlib, Agg): one function per figure in regspace.plots.figures; style in .style."""
