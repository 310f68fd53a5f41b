"""The ``ppkt`` command: thin wrappers that parse a config and call library functions.

Each subcommand lives in ``ppkt.cli.<module>`` and defines ``add_arguments(parser)``
and ``run(args) -> int``. Only commands whose module is present are listed, and a
module is imported only when its command runs, so ``ppkt --help`` stays fast.

Errors: :func:`main` is the one place that turns a user error of any command (a bad value,
a missing or unreadable file, a full disk, a checkpoint that does not fit) into one line
``ppkt <command>: <file or field>: <problem>`` on stderr and exit status 2; Ctrl-C ends with
one line and status 130. ``--debug`` (anywhere on the line) or ``PPKT_DEBUG=1`` shows the
traceback instead. Anything else is a bug in ppkt and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import importlib.util
import os
import sys

from ppkt import __version__

# name -> (module under ppkt.cli, one-line description). Order is the order of the pipeline.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "generate synthetic rooms, pretrain, fine-tune scratch vs PPKT, print the table"),
    "synth": ("synth", "render synthetic indoor RGB-D scenes in the ScanNet layout"),
    "check-data": ("check_data", "validate a dataset and report usable and skipped frames by reason"),
    "cache-teacher": ("cache_teacher", "precompute frozen 2D teacher features for a dataset"),
    "pretrain": ("pretrain", "pretrain a 3D backbone with pixel-to-point InfoNCE"),
    "export": ("export", "write the pretrained 3D backbone of a run as safetensors + card"),
    "finetune": ("finetune", "train a segmentation head (linear probe or full fine-tune)"),
    "evaluate": ("evaluate", "evaluate a segmentation checkpoint: mIoU, mAcc, per-class IoU"),
    "compare": ("compare", "print evaluation runs side by side with mean and std over seeds"),
    "viz": ("viz", "write pictures: feature PCA, similarity maps, overlays, segmentations, curves"),
}


def available_commands() -> dict[str, tuple[str, str]]:
    return {
        name: spec
        for name, spec in COMMANDS.items()
        if importlib.util.find_spec(f"ppkt.cli.{spec[0]}") is not None
    }


EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error of ppkt."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USER_ERROR)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ppkt",
        description="Pretrain 3D point-cloud networks with knowledge from frozen 2D image networks (PPKT).",
    )
    parser.add_argument("--version", action="version", version=f"ppkt {__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the Python traceback of an error instead of one line (also: PPKT_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_line) in available_commands().items():
        # Defer the module import: build a lazily-filled subparser.
        sub_parser = sub.add_parser(name, help=help_line, description=help_line, add_help=False)
        sub_parser.set_defaults(_module=module)
    return parser


_OS_PROBLEMS = {
    errno.ENOSPC: "disk full (no space left on device)",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOTDIR: "not a directory (a file stands where a folder is needed)",
    errno.EISDIR: "is a directory, expected a file",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.ENOENT: "not found",
    errno.EEXIST: "already exists",
}


def _user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input, not a bug: each names the file or field in its message."""
    # NotImplementedError: a combination of options ppkt does not support; ModuleNotFoundError: an
    # optional package (matplotlib, spconv) that is not installed.
    types: list[type[BaseException]] = [
        ValueError, OSError, FloatingPointError, NotImplementedError, ModuleNotFoundError,
    ]  # fmt: skip
    # The project's own error types that are not ValueErrors, looked up only in the modules the
    # command loaded (an error cannot come from a module that was never imported).
    for module, name in (
        ("ppkt.utils.weights", "StateDictMismatch"),
        ("ppkt.train.loop", "NonFiniteLossError"),
        ("ppkt.teachers.vit", "TeacherUnavailable"),
    ):
        error_type = getattr(sys.modules.get(module), name, None)
        if error_type is not None:
            types.append(error_type)
    return tuple(types)


def _from_dataloader_worker(message: str) -> str:
    """The original one-line message of an error re-raised by a torch DataLoader worker.

    torch re-raises it as ``Caught X in DataLoader worker process N.\nOriginal Traceback ...``,
    ending with the original ``X: message`` line.
    """
    if not message.startswith("Caught ") or "Original Traceback" not in message:
        return message
    lines = [line for line in message.strip().splitlines() if line.strip()]
    last = lines[-1].strip()
    name, sep, rest = last.partition(": ")
    if sep and name.replace(".", "").replace("_", "").isalnum():
        return rest
    return last


def _is_user_error(err: BaseException) -> bool:
    types = _user_error_types()
    if isinstance(err, types):
        return True
    # An error type torch cannot rebuild from one string (FrameError) comes back as RuntimeError.
    message = str(err)
    if isinstance(err, RuntimeError) and message.startswith("Caught ") and "DataLoader worker" in message:
        name = message.split()[1]
        pending, names = list(types), set()
        while pending:
            cls = pending.pop()
            names.add(cls.__name__)
            pending += cls.__subclasses__()
        return name in names
    return False


def error_line(err: BaseException) -> str:
    """One line naming the file or field and the problem."""
    if isinstance(err, OSError) and err.errno is not None and (err.filename or err.errno in _OS_PROBLEMS):
        problem = _OS_PROBLEMS.get(err.errno, err.strerror or str(err))
        if err.errno == errno.EEXIST and err.filename is not None and os.path.isfile(err.filename):
            # mkdir(exist_ok=True) meeting a regular file where a folder is needed
            problem = _OS_PROBLEMS[errno.ENOTDIR]
        where = err.filename if err.filename is not None else ""
        if err.filename2 is not None:
            where = f"{where} -> {err.filename2}"
        return f"{where}: {problem}" if where else problem
    message = str(err)
    if isinstance(err, KeyError) and len(err.args) == 1 and message == repr(err.args[0]):
        message = str(err.args[0])
    message = _from_dataloader_worker(message)
    parts = [line.strip() for line in message.splitlines() if line.strip()]
    return "; ".join(parts) or type(err).__name__


def _close_progress_bars() -> None:
    """End the lines of progress bars an error interrupted, so that the error starts a line."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ())):
        bar.close()


def _debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    rest = [a for a in argv if a != "--debug"]
    env = os.environ.get("PPKT_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    return env or len(rest) != len(argv), rest


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug, argv = _debug_requested(argv)
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    name = argv[0]
    commands = available_commands()
    if name not in commands:
        try:
            parser.parse_args(argv)  # prints help, version, or a usage error
        except SystemExit as exit_:
            return exit_.code if isinstance(exit_.code, int) else EXIT_USER_ERROR
        return EXIT_USER_ERROR
    try:
        return _run_command(name, argv[1:])
    except KeyboardInterrupt as err:
        if debug:
            raise
        # The training loops raise a KeyboardInterrupt whose message says how to resume.
        _close_progress_bars()
        print(f"ppkt {name}: {error_line(err) if str(err) else 'interrupted'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if debug or not _is_user_error(err):
            raise
        _close_progress_bars()
        print(f"ppkt {name}: {error_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR


def _run_command(name: str, argv: list[str]) -> int:
    module_name, help_line = available_commands()[name]
    module = importlib.import_module(f"ppkt.cli.{module_name}")
    sub_parser = _Parser(prog=f"ppkt {name}", description=help_line)
    module.add_arguments(sub_parser)
    try:
        args = sub_parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error already printed as one line
        return exit_.code if isinstance(exit_.code, int) else EXIT_USER_ERROR
    return int(module.run(args) or 0)
