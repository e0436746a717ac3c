"""Training: recipes (no torch), the batch pipeline and Lightning module (torch), and the runner."""
