"""PyTorch modules built from designs. Importing this package imports torch."""

from regspace.models.anynet import AnyNet, build_model, count_params

__all__ = ["AnyNet", "build_model", "count_params"]
