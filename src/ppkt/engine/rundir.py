"""Run folders: one writer at a time, nothing left behind by a run that never started, clean Ctrl-C.

:class:`RunFolder` is held by the main process for the whole run. It takes an exclusive lock on
``<run>/run.lock`` (``flock``: released by the operating system when the process dies, even by
``kill -9``, so a crashed run never leaves a stale lock), and removes a folder it created itself
when the run fails before its first step.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

from ppkt.config import get_dotted

LOCK = "run.lock"


class RunLockedError(FileExistsError):
    """Another process is writing into the run folder."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run after it closed its progress bar, log and lock.

    ``str(err)`` is one line: the step reached and the command that resumes the run.
    """

    def __init__(self, step: int, resume_command: str | None):
        self.step = step
        self.resume_command = resume_command
        if resume_command is None:
            message = f"interrupted at step {step}, before the first checkpoint; nothing to resume"
        else:
            message = f"interrupted at step {step}; resume with: {resume_command}"
        super().__init__(message)


class RunFolder:
    """Context manager owning a run folder for one process.

    Args:
        path: the run folder (created with its parents if missing).
        enabled: False on the non-main processes of a distributed run (they never write).

    Raises (on enter):
        RunLockedError: another live process holds the folder; the message names its pid and host.
    """

    def __init__(self, path: str | Path, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.created = False
        self.started = False
        self._handle = None

    def __enter__(self) -> RunFolder:
        if not self.enabled:
            return self
        self.created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._lock()
        except BaseException:
            self._remove_if_unstarted()
            raise
        return self

    def _lock(self) -> None:
        lock = self.path / LOCK
        handle = open(lock, "a+", encoding="utf-8")  # noqa: SIM115 - held until __exit__
        try:
            import fcntl
        except ImportError:  # no flock (Windows): run unlocked rather than not at all
            self._handle = handle
            return
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunLockedError(
                f"{self.path}: in use by {holder} (lock {lock}); wait for it to finish or use another --run.out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle

    def mark_started(self) -> None:
        """The run completed a step: from now on the folder is kept whatever happens."""
        self.started = True

    def _remove_if_unstarted(self) -> None:
        if self.created and not self.started:
            shutil.rmtree(self.path, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.enabled:
            return
        if self._handle is not None:
            # Unlocked by close; the file stays (unlinking a lock file races with a new locker).
            self._handle.close()
            self._handle = None
        if exc_type is not None:
            self._remove_if_unstarted()


def resume_overrides(run_dir: str | Path, overrides: dict[str, str]) -> dict[str, str]:
    """Command-line overrides of ``--resume RUN``: ``run.out`` becomes ``RUN`` wherever the run was
    first written, so a moved or copied run folder resumes in place (another ``--run.out`` is an error)."""
    if "run.out" in overrides and Path(overrides["run.out"]).resolve() != Path(run_dir).resolve():
        raise ValueError(f"--resume {run_dir} continues that folder; drop --run.out {overrides['run.out']}")
    return {**overrides, "run.out": str(run_dir)}


KEPT_ON_RESUME = ("optim.batch_size", "optim.accumulate", "run.seed")
"""Options a resumed run cannot change: they fix which data every step saw, so a resume that
changed them would silently shift the data order against the steps already taken."""


def check_kept_on_resume(run_dir: str | Path, saved, resumed) -> None:
    """One error line naming the first of :data:`KEPT_ON_RESUME` that ``resumed`` (the saved config
    with the command line's overrides) changes from ``saved``."""
    for name in KEPT_ON_RESUME:
        before, after = get_dotted(saved, name), get_dotted(resumed, name)
        if before != after:
            raise ValueError(
                f"--resume {run_dir} keeps {name} {before} (it fixes which data every step saw); "
                f"start a new run to use {after}"
            )
