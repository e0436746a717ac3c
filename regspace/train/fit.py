"""Training one design with PyTorch Lightning: the LightningModule, the Trainer, and the result row.

Imports torch and lightning; only training workers (and tests/benchmarks) import this module.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from regspace import __version__
from regspace.blocks.network import build_model
from regspace.defaults import EVAL_BATCH  # images per evaluation step (at least the training batch)
from regspace.design import Context, Design
from regspace.errors import RegspaceError
from regspace.train.faults import ENVIRONMENT, OUT_OF_MEMORY, ModelOutOfMemory, classify, first_line
from regspace.train.pipeline import Batches, DeviceImages, MappedImages
from regspace.train.recipe import Recipe
from regspace.train.records import Result, Task

# Inference throughput (DDS Fig. 12, runtime against complexity): forward passes of one fixed batch after
# warm-up, on the training device and precision. Small, so that on a CPU it costs well under a second for
# the models of a CPU study (benchmarks/bench_inference.py measures it against the training time).
SPEED_BATCH = 64
SPEED_WARMUP = 2
SPEED_ITERS = 5

for _name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
    logging.getLogger(_name).setLevel(logging.ERROR)
warnings.filterwarnings("ignore", module="pytorch_lightning")
warnings.filterwarnings("ignore", module="lightning_fabric")


class Diverged(Exception):
    def __init__(self, epoch: int, step: int, loss: float, every: int = 1):
        # On a GPU the loss is checked every `every` steps (a check syncs the device): the step is then
        # the first check that saw it, and the loss went bad at most `every` steps earlier.
        where = f"step {step}" if every == 1 else f"step ~{step} (checked every {every} steps)"
        super().__init__(f"loss became {loss} at epoch {epoch}, {where}")
        self.epoch, self.step, self.loss = epoch, step, loss


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 natively (AVX-512 bf16 or AMX), from /proc/cpuinfo. ``REGSPACE_CPU_BF16=0``
    says no on any CPU: precision ``auto`` then trains fp32, as on a CPU without bf16 (to match results or
    timings from such a machine, e.g. the test suite's 6-minute goal on one)."""
    if os.environ.get("REGSPACE_CPU_BF16", "").strip() == "0":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


BF16_CAPABILITY = (8, 0)  # the first GPUs (Ampere, sm80) whose cuDNN has bf16 convolution kernels


def resolve_precision(recipe: Recipe, accelerator: str, device: torch.device | None = None) -> str:
    """The precision ``auto`` means on this device: bf16-mixed on GPUs of compute capability 8.0 or more,
    16-mixed (fp16 with loss scaling) on older GPUs, bf16-mixed on CPUs with AVX-512 bf16 or AMX, else
    32-true. The GPU rule reads the capability, not torch.cuda.is_bf16_supported(), which counts emulation
    and answers True on V100 and T4, where cuDNN has no bf16 convolutions (issue 23)."""
    if recipe.precision == "16-mixed" and accelerator == "cpu":
        return "bf16-mixed"  # Lightning has no fp16 AMP on the CPU and trains bf16 instead: record what runs
    if recipe.precision != "auto":
        return recipe.precision
    if accelerator == "cuda":
        index = device.index if device is not None and device.index is not None else torch.cuda.current_device()
        return "bf16-mixed" if torch.cuda.get_device_capability(index) >= BF16_CAPABILITY else "16-mixed"
    return "bf16-mixed" if cpu_has_bf16() else "32-true"


def preflight(device: torch.device, precision: str, *, channels_last: bool = False) -> None:
    """One training step of a tiny network (a conv, a grouped conv, BN, ReLU, pooling and a linear layer
    on 2 images of 3×8×8) on ``device`` in ``precision``, the way fit_one trains (autocast, backward),
    then a synchronize so that asynchronous CUDA errors surface here. Run by each worker before it says
    it is ready: a GPU without kernels for this torch build, a cuDNN without the precision's
    convolutions or a broken device raises here, once, instead of failing every model (issue 23).
    On the CPU it adds a few per cent to a worker's start-up (benchmarks/bench_preflight.py).
    Raises what torch raises."""
    gen = torch.Generator().manual_seed(0)  # its own generator: the models' seeded draws stay untouched
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 2),
    ).to(device)
    x = torch.randn(2, 3, 8, 8, generator=gen).to(device)
    y = torch.arange(2, device=device)
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    dtype = autocast_dtype(precision)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        loss = F.cross_entropy(net(x).float(), y)
    loss.backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    if not torch.isfinite(loss):
        raise RuntimeError(f"device check: a tiny network's loss is {float(loss)} in {precision}")


TF32_CAPABILITY = (8, 0)  # Ampere: the first GPUs with TF32 tensor cores


def apply_tf32(recipe: Recipe, device: torch.device) -> bool:
    """Set cuDNN's TF32 switch from the recipe (``tf32 = true`` is torch's default: fp32 convolutions may run
    in TF32 on sm80+ GPUs; false: full fp32) and return whether TF32 is on for this device: the ``tf32``
    column. Matmuls stay as torch has them (TF32 off by default). False on the CPU."""
    torch.backends.cudnn.allow_tf32 = recipe.tf32
    if device.type != "cuda":
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    return bool(torch.backends.cudnn.allow_tf32) and torch.cuda.get_device_capability(index) >= TF32_CAPABILITY


def autocast_dtype(precision: str):
    return {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up from 0 (DDS-style short runs use none), then half-cosine decay to 0."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class DesignModule(pl.LightningModule):
    """A design trained by SGD-Nesterov with a cosine schedule; records per-epoch validation error."""

    def __init__(
        self,
        design: Design,
        context: Context,
        recipe: Recipe,
        steps_per_epoch: int,
        *,
        check_every: int = 1,
        report=None,
    ):
        super().__init__()
        self.model = build_model(
            design, context, zero_init_final_gamma=recipe.zero_init_final_gamma, conv_init=recipe.conv_init
        )
        if recipe.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.recipe = recipe
        self.steps_per_epoch = steps_per_epoch
        self.check_every = check_every
        self.report = report or (lambda **kw: None)
        self.val_errors: list[float] = []
        self.train_losses: list[float] = []
        self.train_images = 0
        self.train_seconds = 0.0
        self._loss_sum = None
        self._wrong = self._seen = 0
        self._t0 = None
        self._last_report = 0.0

    def forward(self, x):
        return self.model(x)

    def configure_optimizers(self):
        r = self.recipe
        decay, no_decay = [], []
        for p in self.model.parameters():
            (no_decay if p.ndim <= 1 else decay).append(p)
        bn_wd = r.weight_decay if r.bn_weight_decay is None else r.bn_weight_decay
        opt = torch.optim.SGD(
            [{"params": decay, "weight_decay": r.weight_decay}, {"params": no_decay, "weight_decay": bn_wd}],
            lr=r.scaled_lr,
            momentum=r.momentum,
            nesterov=r.nesterov and r.momentum > 0,
        )
        total = r.epochs * self.steps_per_epoch
        warmup = int(round(r.warmup_epochs * self.steps_per_epoch))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_train_epoch_start(self):
        self._loss_sum = torch.zeros((), device=self.device)
        self._t0 = time.perf_counter()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.model(x).float(), y, label_smoothing=self.recipe.label_smoothing)
        if batch_idx % self.check_every == 0 and not torch.isfinite(loss):
            raise Diverged(self.current_epoch + 1, batch_idx, float(loss.detach()), self.check_every)
        self._loss_sum += loss.detach()
        self.train_images += len(y)
        now = time.perf_counter()
        if now - self._last_report > 1.0:
            self._last_report = now
            self.report(
                epoch=self.current_epoch + 1,
                step=batch_idx + 1,
                steps=self.steps_per_epoch,
                images_per_second=self._rate(now),
            )
        return loss

    def _rate(self, now: float) -> float:
        spent = self.train_seconds + (now - self._t0 if self._t0 else 0.0)
        return self.train_images / spent if spent > 0 else 0.0

    def _close_train_clock(self):
        if self._t0 is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.train_seconds += time.perf_counter() - self._t0
            self._t0 = None
            mean_loss = float(self._loss_sum) / max(1, self.steps_per_epoch)
            if not math.isfinite(mean_loss):
                raise Diverged(self.current_epoch + 1, self.steps_per_epoch, mean_loss)
            self.train_losses.append(mean_loss)

    def on_validation_epoch_start(self):
        self._close_train_clock()  # validation time is not training throughput
        self._wrong = self._seen = 0

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self.model(x).argmax(1)
        self._wrong += int((pred != y).sum())
        self._seen += len(y)

    def on_validation_epoch_end(self):
        err = 100.0 * self._wrong / max(1, self._seen)
        self.val_errors.append(err)
        self.report(epoch=self.current_epoch + 1, val_error=err, images_per_second=self._rate(time.perf_counter()))

    def on_train_epoch_end(self):
        self._close_train_clock()


@dataclass
class PreparedData:
    """A dataset's splits for one device, as the recipe says: (images, labels) per split, where the
    images are :class:`DeviceImages` (held on the device) or :class:`MappedImages` (read from the map)."""

    train: tuple
    val: tuple
    test: tuple | None
    mean: torch.Tensor
    std: torch.Tensor
    num_classes: int
    split: dict
    dataset: str
    layout: str = "memory"  # memory | mapped: where the images come from


def prepare_tensors(arrays: dict, recipe: Recipe, device: torch.device, dataset: str, num_classes: int) -> PreparedData:
    """Split ``arrays`` (from a prepared dataset's ``arrays()``) for ``device``. In-memory arrays are
    copied onto the device; mapped ones (they come with ``train_sums``) stay in the map, and only
    their labels move. The channel mean/std come from exact integer sums in both cases."""
    from regspace.data import make_split
    from regspace.data.imagefolder import image_sums, stats_from_sums

    x_all = arrays["train_x"]
    split = make_split(len(x_all), val_size=recipe.val_size, train_size=recipe.train_size, seed=recipe.split_seed)
    mapped = "train_sums" in arrays
    batch = max(recipe.batch_size, EVAL_BATCH)

    def labels(y, rows):
        return torch.from_numpy(np.ascontiguousarray(y[rows])).to(device)

    def images(x, rows):
        if mapped:
            return MappedImages(x, rows, device, batch)
        return DeviceImages(torch.from_numpy(np.ascontiguousarray(x[rows])).to(device))

    train_rows, val_rows = split["train"], split["val"]
    sums = arrays["train_sums"][train_rows] if mapped else image_sums(x_all[train_rows])
    h, w = x_all.shape[2], x_all.shape[3]
    mean, std = (torch.from_numpy(v) for v in stats_from_sums(sums, h * w))
    train = (images(x_all, train_rows), labels(arrays["train_y"], train_rows))
    val = (images(x_all, val_rows), labels(arrays["train_y"], val_rows))
    test = None
    if len(arrays["test_x"]) and recipe.test_size != 0:
        k = len(arrays["test_x"]) if recipe.test_size is None else min(recipe.test_size, len(arrays["test_x"]))
        rows = np.arange(k)
        test = (images(arrays["test_x"], rows), labels(arrays["test_y"], rows))
    layout = "mapped" if mapped else "memory"
    return PreparedData(train, val, test, mean, std, num_classes, split["record"], dataset, layout)


def describe_device(device: torch.device, precision: str) -> str:
    if device.type == "cuda":
        return f"cuda:{device.index or 0} {torch.cuda.get_device_name(device)} ({precision})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu {cpu}, {torch.get_num_threads()} thread(s) ({precision})"


def _reset_peak_rss() -> None:
    try:  # Linux: writing 5 to clear_refs resets VmHWM, the peak resident set size
        with open(f"/proc/{os.getpid()}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_memory_mb(device: torch.device) -> float:
    """`peak_memory_mb`: the peak memory the model's training held on its device, in MiB. On a GPU, the
    CUDA allocator's peak on that device (model, optimiser state, activations and the resident dataset);
    on the CPU, the worker process's peak resident set (the same, plus the Python/torch runtime, ~0.5 GB).
    Both are reset before each model, so they bound what one more model of that size needs there."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_reserved_mb(device: torch.device) -> float | None:
    """`peak_reserved_mb`: the CUDA allocator's peak reserved memory on the device (MiB): what it held from
    the driver, allocated or cached, so at least `peak_memory_mb`; what a neighbour on the GPU could not use.
    None on the CPU."""
    return torch.cuda.max_memory_reserved(device) / 2**20 if device.type == "cuda" else None


def evaluate(model: torch.nn.Module, batches: Batches, precision: str, device: torch.device) -> float:
    """Top-1 error (percent) of a model over batches, in eval mode and the training precision."""
    model.eval()
    wrong = seen = 0
    dtype = autocast_dtype(precision)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        for x, y in batches:
            wrong += int((model(x).argmax(1) != y).sum())
            seen += len(y)
    return 100.0 * wrong / max(1, seen)


def batches_for(data: PreparedData, part: str, recipe: Recipe, in_channels: int, *, seed: int = 0) -> Batches:
    x, y = getattr(data, part)
    train = part == "train"
    return Batches(
        x,
        y,
        batch_size=recipe.batch_size if train else max(recipe.batch_size, EVAL_BATCH),
        mean=data.mean,
        std=data.std,
        in_channels=in_channels,
        shuffle=train,
        augment=recipe.augment if train else "none",
        drop_last=train,
        channels_last=recipe.channels_last,
        seed=seed,
    )


def fit_one(task: Task, recipe: Recipe, data: PreparedData, *, device: torch.device, report=None) -> Result:
    """Train one model; returns its Result (ok / diverged / failed: never raises for the model's sake).

    Raises what is not the model's doing (regspace.train.faults.classify): an environment error as it
    came (the worker reports it and its device is excluded; no empty_cache() after it, which would raise
    again after a sticky CUDA error), and :class:`~regspace.train.faults.ModelOutOfMemory` for CUDA out
    of memory, carrying the ``failed`` Result, which the pool keeps only if the model trained alone."""
    design, context = task.design, task.context
    try:  # the values drawn with this model replace the recipe's (NDS §5); the hash stays the recipe's
        recipe, mismatch = recipe.for_draw(dict(task.hparams), task.model_id), None
    except RegspaceError as e:
        mismatch = e.line()
    accelerator = "cuda" if device.type == "cuda" else "cpu"
    precision = resolve_precision(recipe, accelerator, device)
    base = {
        "recipe_hash": recipe.hash,
        "recipe": recipe.to_json(),
        "seed": recipe.seed,
        "dataset": data.dataset,
        "split": _json(data.split),
        "device": describe_device(device, precision),
        "device_kind": device.type,
        "precision": precision,
        "data_layout": data.layout,
        "tf32": apply_tf32(recipe, device),
        "torch_version": torch.__version__,
        "lightning_version": pl.__version__,
        "regspace_version": __version__,
        "host": platform.node(),
    }
    if mismatch:
        return Result.failed(task.model_id, reason=mismatch, **base)
    if context.num_classes < data.num_classes:
        reason = f"model has {context.num_classes} outputs but the dataset has {data.num_classes} classes"
        return Result.failed(task.model_id, reason=reason, **base)
    _reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(recipe.seed)
    t0 = time.perf_counter()
    module = None
    environment = False
    try:
        train = batches_for(data, "train", recipe, context.in_channels, seed=recipe.seed)
        if len(train) == 0:
            raise ValueError(f"batch size {recipe.batch_size} exceeds the {len(data.train[0])} training images")
        val = batches_for(data, "val", recipe, context.in_channels)
        module = DesignModule(
            design, context, recipe, len(train), check_every=1 if accelerator == "cpu" else 25, report=report
        )
        trainer = pl.Trainer(
            accelerator=accelerator,
            devices=[device.index or 0] if accelerator == "cuda" else 1,
            precision=precision,
            max_epochs=recipe.epochs,
            barebones=True,
            num_sanity_val_steps=0,
            enable_checkpointing=False,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            inference_mode=True,
            gradient_clip_val=recipe.grad_clip,
        )
        trainer.fit(module, train_dataloaders=train, val_dataloaders=val)
        if len(module.val_errors) < recipe.epochs:
            raise RuntimeError("training stopped early")
        test_error = None
        model = module.model.to(device)  # Lightning's teardown has moved the module back to the CPU
        if data.test is not None:
            test_error = evaluate(model, batches_for(data, "test", recipe, context.in_channels), precision, device)
        speed = inference_speed(model, context, precision, device, channels_last=recipe.channels_last)
        return Result.ok(
            task.model_id,
            error=module.val_errors[-1],
            min_error=min(module.val_errors),
            test_error=test_error,
            train_loss=module.train_losses[-1],
            epochs=len(module.val_errors),
            train_seconds=time.perf_counter() - t0,
            images_per_second=module.train_images / module.train_seconds if module.train_seconds else None,
            peak_memory_mb=_peak_memory_mb(device),
            inference_images_per_second=speed,
            peak_reserved_mb=_peak_reserved_mb(device),
            **_curves(module),
            **base,
        )
    except Diverged as e:
        return Result.diverged(
            task.model_id,
            reason=str(e),
            epochs=e.epoch - 1,
            train_seconds=time.perf_counter() - t0,
            peak_memory_mb=_peak_memory_mb(device),
            peak_reserved_mb=_peak_reserved_mb(device),
            train_loss=e.loss,
            **_curves(module),
            **base,
        )
    except Exception as e:  # noqa: BLE001 - a model that raises (a shape error, say) is a recorded outcome
        kind = classify(e)
        if kind == ENVIRONMENT:
            environment = True  # not the model's doing; after a sticky CUDA error even empty_cache() raises
            raise
        result = Result.failed(
            task.model_id,
            reason=first_line(e),
            epochs=len(module.val_errors) if module else 0,
            train_seconds=time.perf_counter() - t0,
            **_curves(module),
            **base,
        )
        if kind == OUT_OF_MEMORY:
            raise ModelOutOfMemory(result) from None  # final only if it ran alone: the pool decides
        return result
    finally:
        if device.type == "cuda" and not environment:
            torch.cuda.empty_cache()


def inference_speed(
    model: torch.nn.Module,
    context: Context,
    precision: str,
    device: torch.device,
    *,
    batch: int = SPEED_BATCH,
    warmup: int = SPEED_WARMUP,
    iters: int = SPEED_ITERS,
    channels_last: bool = False,
) -> float | None:
    """The model's inference throughput in images/s: ``iters`` timed forward passes of one random batch of
    ``batch`` images (context's channels and resolution), after ``warmup`` untimed ones, in eval and
    inference mode, in the training ``precision`` and memory format, on ``device`` (synchronised on a
    GPU). DDS §4 (Fig. 12) reads inference time against flops and activations. None when the measurement
    cannot be made (out of memory): a trained model's result stays ok without it."""
    model.eval()
    x = torch.randn(batch, context.in_channels, context.resolution, context.resolution, device=device)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)  # as the model was trained
    dtype = autocast_dtype(precision)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda *a: None)
    try:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                    enabled=dtype is not None):  # fmt: skip
            for _ in range(warmup):
                model(x)
            sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                model(x)
            sync(device)
            seconds = time.perf_counter() - t0
    except torch.cuda.OutOfMemoryError:
        return None
    return batch * iters / seconds if seconds > 0 else None


def _curves(module: DesignModule | None) -> dict:
    """The learning curves so far: validation error and mean training loss per completed epoch."""
    if module is None:
        return {}
    return {"val_errors": tuple(module.val_errors), "train_losses": tuple(module.train_losses)}


def _json(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True)
