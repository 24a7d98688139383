"""The fitting loop: AdamW, linear warm-up then cosine decay, batches of clips, checkpoints.

The learning-rate schedule is a function of progress in [0, 1]: steps done / steps planned, or
elapsed / time limit when a time limit is set, so a time-limited fit still anneals to zero. One
run() follows one Schedule: the fit's own by default, or another's, such as the compression
fine-tune's (dnerv_codec/compress/qat.py) with its step hooks.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from ..config import FitConfig
from ..malloc import keep_freed_memory
from .data import ClipData, epoch_order
from .distributed import Dist
from .prefetch import Prefetcher
from .ssim import ssim

REPORT_EVERY_S = 0.25  # progress reports read the loss, which waits for a GPU to finish its queue


@dataclass(frozen=True)
class FitProgress:
    """What a progress bar shows after a step."""

    step: int
    epoch: int
    fraction: float
    loss: float
    psnr: float
    elapsed: float
    frames_per_s: float = math.nan  # frames fitted per second in this run

    @property
    def eta(self) -> float | None:
        """Seconds left at the pace so far (exact for a time limit: the progress is the clock's)."""
        return self.elapsed * (1 - self.fraction) / self.fraction if self.fraction > 0 else None


@dataclass(frozen=True)
class FitResult:
    steps: int
    epochs: float
    seconds: float
    loss: float
    psnr: float


@dataclass(frozen=True)
class Schedule:
    """How far one Trainer.run goes and how fast it learns. Its progress is the larger of the steps
    taken since `first_step` over `steps` and the seconds spent over `seconds` (`spent` of them
    before the run began, the same number on every process); a limit of None does not count. The
    learning rate is learning_rate(curve, progress)."""

    curve: FitConfig  # lr and warmup_frac
    steps: float | None
    seconds: float | None
    first_step: int = 0
    spent: float = 0.0

    def progress(self, step: int, seconds: float) -> float:
        parts = []
        if self.steps is not None:
            parts.append((step - self.first_step) / self.steps)
        if self.seconds is not None:
            parts.append(seconds / self.seconds)
        return max(parts)


class StepHooks(Protocol):
    """What a run can do around each optimisation step (e.g. the compression fine-tune's fake
    quantization and pruning masks)."""

    def before_forward(self) -> None: ...

    def before_step(self) -> None:
        """After backward, before the optimizer step."""

    def after_step(self) -> None: ...


def learning_rate(cfg: FitConfig, progress: float) -> float:
    """Linear warm-up from 0.1 x lr, then cosine decay to 0 over the rest of the schedule."""
    if progress < cfg.warmup_frac:
        return cfg.lr * (0.1 + 0.9 * progress / cfg.warmup_frac)
    rest = (progress - cfg.warmup_frac) / (1 - cfg.warmup_frac)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(rest, 1.0)))


def frame_losses(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Per-frame loss [N] between predicted and target frames [N, 3, H, W] in [0, 1].

    Per frame, so a batch split across processes sums to exactly the single-process mean."""
    if kind in ("l1", "mse"):
        err = (pred - target).abs() if kind == "l1" else (pred - target).square()
        return err.flatten(1).mean(1)
    side = min(pred.shape[-2:])
    win = max(min(11, side - (1 - side % 2)), 1)  # odd window that fits the frame
    one_minus_ssim = 1 - ssim(pred, target, win)
    if kind == "l1_ssim":
        return 0.7 * (pred - target).abs().flatten(1).mean(1) + 0.3 * one_minus_ssim
    return (pred - target).square().flatten(1).mean(1) + 0.03 * one_minus_ssim


def to_model_inputs(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor | None]:
    """uint8 clips to float tensors on the device (the conversion happens there, not on the host);
    keyframes None for a model without them."""
    keys = batch.get("keyframes")
    out = {
        "keyframes": None if keys is None else keys.to(device, non_blocking=True).float().div_(255),
        "t": batch["t"].to(device, non_blocking=True),
        "w": batch["w"].to(device, non_blocking=True),
        "mask": batch["mask"].to(device, non_blocking=True),
    }
    if "frames" in batch:
        out["frames"] = batch["frames"].to(device, non_blocking=True).float().div_(255)
    return out


@contextmanager
def _deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """While inside, a first SIGINT only sets a flag (read through the yielded function); the
    previous handler is back for a second one. Outside the main thread, signals stay as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hit = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame) -> None:
        hit.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, handler)
    try:
        yield hit.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _loss_and_psnr(loss: torch.Tensor, mse: torch.Tensor) -> tuple[float, float]:
    return float(loss), -10 * math.log10(max(float(mse), 1e-10))


class Trainer:
    """Fits `model` to `data`. Under torchrun (`dist.world` > 1) every process takes its share of
    each global batch and DistributedDataParallel averages the gradients, so the parameters follow
    the single-process fit with the same global batch, data order and seed."""

    def __init__(
        self,
        model: torch.nn.Module,
        data: ClipData,
        cfg: FitConfig,
        device: torch.device,
        dist: Dist | None = None,
    ) -> None:
        keep_freed_memory()  # no per-step page faults on the activations (see its docstring)
        self.dist = dist or Dist()
        self.net, self.data, self.cfg, self.device = model, data, cfg, device
        self.rank, self.world = self.dist.rank, self.dist.world
        self.model = model
        if self.dist.enabled:
            ids = [device.index] if device.type == "cuda" else None
            self.model = DistributedDataParallel(model, device_ids=ids)
        # fused: one kernel over all parameters, same update rule (measured: docs/compression.md#the-training-loop)
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=0.0, fused=True
        )
        self.steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
        self.step = 0
        self.elapsed = 0.0  # training seconds so far, earlier (resumed) runs included
        # Share of the configured schedule (steps and time limit) that the fit spans: less than 1
        # when the compression fine-tune (dnerv_codec/compress/stage.py) takes the rest.
        self.budget_share = 1.0
        self.hooks: StepHooks | None = None  # those of the run in progress
        self.clock: Callable[[], float] = time.monotonic  # seconds; tests give a clock of their own
        self._run_frames, self._run_start = 0, 0.0  # the run in progress, for its frames per second

    # -- schedule --------------------------------------------------------------------------
    def fit_schedule(self) -> Schedule:
        """The fit's own schedule: the configured epochs and time limit times budget_share, counted
        from step 0 and from the fitting seconds of earlier (resumed) runs."""
        cfg = self.cfg
        steps = None if cfg.epochs is None else cfg.epochs * self.steps_per_epoch * self.budget_share
        seconds = None if cfg.time_limit is None else 60 * cfg.time_limit * self.budget_share
        return Schedule(cfg, steps, seconds, spent=self.elapsed)

    def progress(self, elapsed: float) -> float:
        """The fit's progress after `elapsed` fitting seconds (fit_schedule)."""
        return self.fit_schedule().progress(self.step, elapsed)

    def _batches(self) -> Iterator[list[int]]:
        """Global batches (clip indices) from the current step on. Positions are counted here, not
        read from self.step, which lags behind while batches are read ahead."""
        step = self.step
        while True:
            epoch, offset = divmod(step, self.steps_per_epoch)
            order = epoch_order(len(self.data), self.cfg.seed, epoch)
            for b in range(offset, self.steps_per_epoch):
                yield order[b * self.cfg.batch_size : (b + 1) * self.cfg.batch_size].tolist()
                step += 1

    def prefetched_batches(self) -> Prefetcher[list[int], dict[str, torch.Tensor]]:
        """(global batch, this process's host batch) from the current step on, read ahead in a
        background thread while the device runs the step (close it when done)."""
        return Prefetcher(self._batches(), self.host_batch)

    def host_batch(self, global_batch: list[int]) -> dict[str, torch.Tensor]:
        """This process's share of a global batch, read from the cache (into pinned memory for CUDA).
        A process left without a clip (a short last batch) gets one, whose loss counts zero."""
        share = global_batch[self.rank :: self.world]
        return self.data.batch(share or global_batch[:1], pin_memory=self.device.type == "cuda")

    # -- one step --------------------------------------------------------------------------
    def train_step(
        self, global_batch: list[int], lr: float, host: dict[str, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimisation step on this process's share of a global batch of clips (`host`: its
        host_batch, when read ahead)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        global_frames = int(self.data.mask[global_batch].sum())
        self._run_frames += global_frames
        # A process without a clip still joins the gradient all-reduce, with a zero-weight clip.
        weight = 1.0 if global_batch[self.rank :: self.world] else 0.0
        host = self.host_batch(global_batch) if host is None else host
        every_frame = bool(host["mask"].all())  # read on the host: no device sync
        batch = to_model_inputs(host, self.device)
        if self.hooks is not None:
            self.hooks.before_forward()
        pred = self.model(batch["keyframes"], batch["t"], batch["w"], clamp=False)
        if every_frame:  # no padded frame: views, not the masked copies (and their scatter backward)
            pred, target = pred.flatten(0, 1), batch["frames"].flatten(0, 1)
        else:
            mask = batch["mask"]
            pred, target = pred[mask], batch["frames"][mask]
        # Mean over the frames of the GLOBAL batch; DDP averages gradients over `world` processes.
        loss = frame_losses(pred, target, self.cfg.loss).sum() * (weight * self.world / global_frames)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.hooks is not None:
            self.hooks.before_step()
        self.optimizer.step()
        if self.hooks is not None:
            self.hooks.after_step()
        with torch.no_grad():
            mse = F.mse_loss(pred.detach().clamp(0, 1), target)
        return loss.detach(), mse

    def run(
        self,
        on_progress: Callable[[FitProgress], None] | None = None,
        on_checkpoint: Callable[[], None] | None = None,
        schedule: Schedule | None = None,
        hooks: StepHooks | None = None,
    ) -> FitResult:
        """Train until `schedule` (default: the fit's, fit_schedule()) ends, with `hooks` around
        every step. Ctrl-C stops at the next step boundary, so the checkpoint `on_checkpoint` writes
        is exactly resumable, then raises KeyboardInterrupt (a second Ctrl-C stops at once, without
        a new checkpoint)."""
        schedule = schedule if schedule is not None else self.fit_schedule()
        self.hooks = hooks
        self.model.train()
        try:
            last, progress = self._loop(schedule, on_progress, on_checkpoint)
        finally:
            self.hooks = None
            self.model.eval()
        loss = psnr = math.nan
        if last is not None:
            final = self._progress_report(*last, progress)
            loss, psnr = final.loss, final.psnr
            if on_progress is not None:
                on_progress(final)
        return FitResult(self.step, self.step / self.steps_per_epoch, self.elapsed, loss, psnr)

    def _loop(self, schedule: Schedule, on_progress, on_checkpoint) -> tuple[tuple | None, float]:
        """The steps of run(); returns the last step's (loss, mse) (None when no step was taken) and
        the progress at the end."""
        start, before = self.clock(), self.elapsed
        last_save = reported = self.clock()
        last, self._run_frames, self._run_start = None, 0, start
        with _deferred_interrupt() as interrupted, self.prefetched_batches() as batches:
            while True:
                # every process follows the same clock and stops together (one all-reduce a step)
                ran, stop_now = self.dist.agree(self.clock() - start, interrupted())
                if stop_now:
                    if on_checkpoint is not None:
                        on_checkpoint()
                    raise KeyboardInterrupt
                progress = schedule.progress(self.step, schedule.spent + ran)
                if progress >= 1.0:
                    return last, progress
                global_batch, host = next(batches)
                last = self.train_step(global_batch, learning_rate(schedule.curve, progress), host)
                self.step += 1
                self.elapsed = before + self.clock() - start
                # Reading the loss waits for a GPU to finish the step: a few times a second only.
                if on_progress is not None and self.clock() - reported >= REPORT_EVERY_S:
                    now = schedule.progress(self.step, schedule.spent + self.clock() - start)
                    on_progress(self._progress_report(*last, now))
                    reported = self.clock()
                if on_checkpoint is not None and self.clock() - last_save > 60 * self.cfg.checkpoint_min:
                    on_checkpoint()
                    last_save = self.clock()

    def _progress_report(self, loss_t: torch.Tensor, mse_t: torch.Tensor, progress: float) -> FitProgress:
        loss, psnr = _loss_and_psnr(loss_t, mse_t)
        frac = min(progress, 1.0)
        run_s = self.clock() - self._run_start
        fps = self._run_frames / run_s if run_s > 0 else math.nan
        return FitProgress(self.step, self.step // self.steps_per_epoch, frac, loss, psnr, self.elapsed, fps)

    # -- checkpoint state ------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"model.{k}": v for k, v in self.net.learned_state().items()}
        for i, state in self.optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"optim.{i}.{key}"] = torch.as_tensor(value)
        return tensors

    def load_state(self, tensors: dict[str, torch.Tensor], step: int, elapsed: float) -> None:
        self.net.load_learned_state(
            {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        )
        state: dict[int, dict[str, torch.Tensor]] = {}
        for name, value in tensors.items():
            if name.startswith("optim."):
                _, i, key = name.split(".", 2)
                state.setdefault(int(i), {})[key] = value
        saved = self.optimizer.state_dict()
        saved["state"] = state
        self.optimizer.load_state_dict(saved)
        self.step, self.elapsed = step, elapsed
