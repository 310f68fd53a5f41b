"""The run engine shared by every training loop (pretraining, fine-tuning, detection).

    runtime          device ('auto'), torchrun process group, seeding, CPU threads, determinism
    schedule         warm-up + cosine / poly(power) / constant learning-rate factor
    metrics          the JSONL (+ TensorBoard) metrics log, truncated on resume
    checkpoint       atomic step checkpoints: save, prune, latest
    guards           NonFiniteError and the finite checks run before a checkpoint or a load
    precision        fp32 / bf16 / fp16 autocast, grad scaler, gradient accumulation
    sync_batchnorm   batch-norm statistics over every process (sparse tensors, any device)
    rundir           the run folder's lock, clean-up and Ctrl-C (RunInterrupted)

A loop built on it stays a short, readable sequence of its own model, data and loss calls.
"""

from ppkt.engine.checkpoint import TrainingState, latest_checkpoint, load_checkpoint, save_checkpoint
from ppkt.engine.guards import NonFiniteError, check_finite_file, first_non_finite, training_state_problem
from ppkt.engine.metrics import MetricsLog
from ppkt.engine.precision import PRECISIONS, Precision, gradient_sync
from ppkt.engine.rundir import RunFolder, RunInterrupted, RunLockedError
from ppkt.engine.runtime import DistInfo, Runtime, resolve_device, setup_runtime
from ppkt.engine.schedule import SCHEDULES, lr_factor

__all__ = [
    "PRECISIONS",
    "SCHEDULES",
    "DistInfo",
    "MetricsLog",
    "NonFiniteError",
    "Precision",
    "RunFolder",
    "RunInterrupted",
    "RunLockedError",
    "Runtime",
    "TrainingState",
    "check_finite_file",
    "first_non_finite",
    "gradient_sync",
    "latest_checkpoint",
    "load_checkpoint",
    "lr_factor",
    "resolve_device",
    "save_checkpoint",
    "setup_runtime",
    "training_state_problem",
]
