"""`regspace export-model`: a design as a torch.export program that plain torch loads and runs.

The program (torch.export.export, then torch.export.save) holds the network's graph of ATen operators and
its weights; loading it (``torch.export.load(path).module()``) needs torch only, not regspace. It is the
network in eval mode (BatchNorm uses its running statistics), taking a float32 batch (N, C, H, W) with
N free and (C, H, W) the context's, and returning (N, classes) logits.

Weights: regspace keeps no trained weights (a training run stores its result, not a checkpoint), so
the program holds the network as initialised (regspace's init, torch.manual_seed(seed) first).
Imports torch when called.
"""

from __future__ import annotations

from pathlib import Path

from regspace.design import Context, Design
from regspace.errors import RegspaceError

MAX_BATCH = 1 << 16  # the exported batch dimension's upper bound (torch.export needs one for a dynamic dim)


def build_eval_model(design: Design, context: Context, *, seed: int = 0):
    """The nn.Module of ``design`` (regspace.blocks.network.build_model) after torch.manual_seed(seed),
    in eval mode: the module an exported program reproduces."""
    import torch

    from regspace.blocks.network import build_model

    torch.manual_seed(seed)
    return build_model(design, context).eval()


def export_model(design: Design, context: Context, out: str | Path, *, seed: int = 0) -> dict:
    """Write ``design`` fed by ``context`` as a torch.export program to ``out`` (conventionally *.pt2).
    Returns {"path", "params", "input_shape" (with None for the batch), "seed"}. Raises RegspaceError when
    the file cannot be written or torch cannot export the network."""
    import torch

    model = build_eval_model(design, context, seed=seed)
    c, r = context.in_channels, context.resolution
    example = torch.zeros(2, c, r, r)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    try:
        with torch.no_grad():
            program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as e:  # torch's export errors have many types; one line says which network failed
        raise RegspaceError(f"torch.export could not export this network: {type(e).__name__}: {e}") from None
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(program, out)
    except OSError as e:
        raise RegspaceError(f"cannot write {out}: {e.strerror or e}") from None
    params = sum(p.numel() for p in model.parameters())
    return {"path": str(out), "params": int(params), "input_shape": [None, c, r, r], "seed": seed}
