"""Fit stage: the network built and fitted to the cached frames (fit/trainer.py), with checkpoints
next to the output (rank 0) that --resume continues from, and Ctrl-C turned into Interrupted."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..compress.stage import fit_share, stage_active
from ..errors import Interrupted, ResumeError
from ..fit.checkpoint import Checkpoint
from ..fit.data import ClipData
from ..fit.distributed import Dist
from ..fit.trainer import FitResult, Trainer
from ..model.build import build_model
from ..report import Reporter
from .frames import Frames
from .keyframes import Keyframes, Normalisation
from .plan import Configs, Plan


@dataclass(frozen=True)
class Resume:
    """Where the fit's checkpoints go, what each records, and the one resumed from (if any)."""

    path: Path
    fingerprint: str
    recorded: dict  # the settings
    loaded: Checkpoint | None

    def keyframes(self) -> list[bytes]:
        """The coded keyframes the loaded checkpoint kept, so they are not coded twice."""
        return [self.loaded.blobs[_blob_name(i)] for i in range(len(self.loaded.blobs))]


@dataclass(frozen=True)
class Fitted:
    trainer: Trainer  # holds the fitted model (trainer.net)
    colours: Normalisation  # the normalisation it was fitted with
    result: FitResult
    params: int


def _blob_name(keyframe: int) -> str:
    return f"key{keyframe}"


def check_resumable(path: Path, resume: bool) -> None:
    """Early, before decoding every video into the cache."""
    if resume and not path.exists():
        raise ResumeError(f"no checkpoint to resume at {path}")


def resume_point(path: Path, resume: bool, plan: Plan) -> Resume:
    """The checkpoint to resume (ResumeError unless it was made with the same inputs and settings)."""
    loaded = Checkpoint.load(path) if resume else None
    if loaded is not None and loaded.meta.get("fingerprint") != plan.fingerprint:
        as_stored = json.loads(json.dumps(plan.recorded, default=str))  # tuples as the file keeps them
        changed = _differences(loaded.meta.get("configs", {}), as_stored)
        what = (
            f"the settings differ from those of the checkpoint {path} ({', '.join(changed[:6])})"
            if changed
            else f"the inputs (the videos' files or the working size) differ from those of the checkpoint {path}"
        )
        raise ResumeError(
            f"{what}; run again with the same inputs and options, or without --resume to start over"
        )
    return Resume(path, plan.fingerprint, plan.recorded, loaded)


def _differences(saved: dict, now: dict, prefix: str = "") -> list[str]:
    """'fit.seed 0 -> 6' for every setting that differs between two recorded settings trees."""
    out = []
    for key in sorted(set(saved) | set(now), key=str):
        a, b, name = saved.get(key), now.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, name + ".")
        elif a != b:
            out.append(f"{name} {a} -> {b}")
    return out


def fit_network(
    configs: Configs,
    frames: Frames,
    keys: Keyframes,
    resume: Resume,
    device: torch.device,
    ctx: Dist,
    reporter: Reporter,
) -> Fitted:
    colours = keys.colours
    if resume.loaded is not None:
        colours = Normalisation(tuple(resume.loaded.meta["mean"]), tuple(resume.loaded.meta["std"]))
    torch.manual_seed(configs.fit.seed)
    model = build_model(configs.model, *frames.shape)
    model.set_normalization(list(colours.mean), list(colours.std))
    model.to(device)
    data = ClipData(frames.layout, frames.videos, keys.decoded, global_time=not configs.model.uses_keyframes)
    trainer = Trainer(model, data, configs.fit, device, ctx)
    if resume.loaded is not None:
        state = resume.loaded
        trainer.load_state(state.tensors, state.meta["step"], state.meta["elapsed"])
        reporter.info(f"resuming from step {trainer.step} ({trainer.elapsed:.0f} s fitted)")
    params = sum(p.numel() for p in model.parameters())
    reporter.info(f"network: {params:,} parameters (fc_dim {configs.model.fc_dim})")
    trainer.budget_share = fit_share(configs.quant)  # the compression fine-tune takes the rest
    save = _checkpointer(trainer, resume, colours, keys.blobs) if ctx.is_main else None
    result = _run(trainer, save, resume.path, reporter)
    if save is not None and stage_active(configs.quant):
        save()  # the end of the fit: an interrupted compression stage resumes from here
    return Fitted(trainer, colours, result, params)


def _checkpointer(trainer: Trainer, resume: Resume, colours: Normalisation, blobs: list[bytes]):
    def save() -> None:
        meta = {
            "fingerprint": resume.fingerprint,
            "step": trainer.step,
            "elapsed": trainer.elapsed,
            "mean": list(colours.mean),
            "std": list(colours.std),
            "configs": resume.recorded,
        }
        blob_map = {_blob_name(i): b for i, b in enumerate(blobs)}
        Checkpoint(meta, trainer.state_tensors(), blob_map).save(resume.path)

    return save


def _run(trainer: Trainer, save, checkpoint: Path, reporter: Reporter) -> FitResult:
    cfg = trainer.cfg
    total = cfg.epochs * trainer.steps_per_epoch if cfg.time_limit is None else None
    total = round(total * trainer.budget_share) if total else None
    with reporter.task("fitting", total=total if total else 1.0, unit="step", estimates=False) as task:

        def on_progress(p):
            fields = {"loss": p.loss, "psnr": p.psnr, "epoch": p.epoch, "frames/s": p.frames_per_s}
            if p.eta is not None:
                fields["left"] = _clock_text(p.eta)  # the trainer's own estimate (see FitProgress.eta)
            task.update(p.step if total else p.fraction, **fields)

        try:
            return trainer.run(on_progress, save)
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; fit saved to {checkpoint}; run the same command with --resume to continue"
            ) from None


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"
