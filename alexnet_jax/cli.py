"""What every alexnet_jax command shares: its exit codes, its error line, quiet library logs.

Every command (`python -m alexnet_jax.<command>`) exits with one of these codes, so scripts
and the study launcher can tell the cases apart without reading logs:

    0  success
    1  failed: the work could not be done (a run failed, a download or parity check failed)
    2  bad input: a flag, config, file or data set is wrong; the message names it and what to do
    3  not available: a needed file is not here offline (`convert --check_only`)
    4  locked: another process is training that run; nothing was touched
    5  interrupted: SIGTERM or SIGINT stopped the work cleanly; run the same command to resume

Flags are defined by each command's `define_flags()`, called only when it runs, so importing
any module never defines a flag.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_LOCKED = 4
EXIT_INTERRUPTED = 5

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "failed: the work could not be done (a run failed, a download or parity check failed)",
    EXIT_BAD_INPUT: "bad input: a flag, config, file or data set is wrong; the message names it and what to do",
    EXIT_UNAVAILABLE: "not available: a needed file is not here offline (`convert --check_only`)",
    EXIT_LOCKED: "locked: another process is training that run; nothing was touched",
    EXIT_INTERRUPTED: "interrupted: SIGTERM or SIGINT stopped the work cleanly; run the same command to resume",
}


def report_error(error: BaseException | str, code: int = EXIT_BAD_INPUT) -> int:
    """Print `error: ...` on stderr, after any buffered library logs, and return `code`."""
    from absl import logging

    logging.flush()
    print(f"error: {error}", file=sys.stderr, flush=True)
    return code


def quiet_library_logs() -> None:
    """orbax and jax log every checkpoint step at INFO through absl; our own progress lines are
    printed. Library logs show again with --verbosity=0 (or higher)."""
    from absl import flags, logging

    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def parse_runs(text: str) -> list[int]:
    """'0-9,49' -> [0, ..., 9, 49]."""
    runs: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ValueError(f"--runs: cannot read {part!r}; use e.g. 0-9,49")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise ValueError(f"--runs: range {part!r} runs backwards")
        runs.extend(range(low, high + 1))
    return sorted(set(runs))


COMPILATION_CACHE_ENV = "ALEXNET_JAX_COMPILATION_CACHE"


def enable_compilation_cache(directory: str | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache, so other processes (a SLURM array's tasks, a
    resumed study, the next run) load compiled steps instead of compiling them again.

    The directory is `directory`, else $ALEXNET_JAX_COMPILATION_CACHE, else a cache JAX was
    already given (JAX_COMPILATION_CACHE_DIR), else ~/.cache/alexnet_jax/xla; "off" turns it
    off. Returns the directory in use, or None.
    """
    import jax

    chosen = directory or os.environ.get(COMPILATION_CACHE_ENV)
    if chosen is None and jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    if chosen is not None and chosen.strip().lower() in ("off", "none", "0", ""):
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    if chosen is None:
        cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        chosen = str(cache_home / "alexnet_jax" / "xla")
    Path(chosen).expanduser().mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(Path(chosen).expanduser()))
    return str(Path(chosen).expanduser())


# --------------------------------------------------------------------------------------
# --config: an ml_collections config file, `PATH` or `PATH:VARIANT`.


def define_config_flag(default: str, help_string: str) -> None:
    """`--config` (and its `--config.field=value` overrides) of a command."""
    from ml_collections import config_flags

    config_flags.DEFINE_config_file("config", default, help_string, lock_config=True)


def config_argument(argv: Sequence[str], default: str) -> str:
    """The value of the last `--config=X` (or `--config X`) in `argv`, else `default`."""
    found = default
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--config="):
            found = arg.split("=", 1)[1]
        elif arg == "--config" and i + 1 < len(argv):
            found = argv[i + 1]
    return found


def config_overrides(argv: Sequence[str]) -> list[str]:
    """The dotted field names of the `--config.a.b=value` (or `--config.a.b value`) flags in `argv`."""
    found = []
    for arg in argv:
        if arg == "--":
            break
        if arg.startswith("--config."):
            found.append(arg[len("--config.") :].split("=", 1)[0])
    return found


def _override_problem(config, field: str) -> str | None:
    """One line when the config has no field `field` (dotted), naming the nearest ones it has."""
    import difflib

    node, walked = config, []
    for part in field.split("."):
        keys = list(node.keys()) if hasattr(node, "keys") else []
        if part not in keys:
            close = difflib.get_close_matches(part, keys, n=3, cutoff=0.5)
            where = ".".join(walked) or "the config"
            hint = f"; did you mean {', '.join('--config.' + '.'.join([*walked, c]) for c in close)}?" if close else ""
            return f"--config.{field}: {where} has no field {part!r}{hint}"
        node, walked = node[part], [*walked, part]
    return None


def config_problem(argument: str, overrides: Sequence[str] = ()) -> str | None:
    """None if the config `argument` (PATH or PATH:VARIANT) loads and has every overridden field, else
    one line naming what is wrong and what exists: the config files of its folder, the file's variants
    (its VARIANTS), or the fields nearest an unknown `--config.X`."""
    import importlib.util
    import inspect

    text, _, variant = argument.partition(":")
    path = Path(text).expanduser()
    where = f"--config={argument}"
    if not path.is_file():
        folder = path.parent
        files = _config_files(folder)
        if files:
            return f"{where}: no such config file; the config files in {folder}/ are {', '.join(files)}"
        shipped = Path(__file__).resolve().parent / "configs"
        listed = ", ".join(_config_files(shipped))
        return f"{where}: no such config file ({folder}/ holds none); the project's, in {shipped}/, are {listed}"
    try:
        spec = importlib.util.spec_from_file_location(f"_checked_config_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001  (any error of the file is the user's to fix)
        return f"{where}: {path} does not import ({type(error).__name__}: {_one_line(error)}); fix the file"
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        return f"{where}: {path} defines no get_config(); a config file returns its ConfigDict from get_config()"
    variants = getattr(module, "VARIANTS", None)
    if variants is None and not inspect.signature(get_config).parameters:
        variants = ("",)
    if variants is not None and variant not in variants:
        listed = ", ".join(f"{text}:{v}" if v else f"{text} (no variant)" for v in variants)
        told = f"has no variant {variant!r}" if variant else "needs a variant"
        return f"{where}: {path.name} {told}; use one of {listed}"
    try:
        config = get_config(*([variant] if variant else []))
    except Exception as error:  # noqa: BLE001
        return f"{where}: get_config failed ({type(error).__name__}: {_one_line(error)})"
    return next(filter(None, (_override_problem(config, field) for field in overrides)), None)


def _config_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.py") if p.name != "__init__.py") if folder.is_dir() else []


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def exit_on_bad_config(argv: Sequence[str], default: str) -> None:
    """Before absl parses the flags: a config that is missing, does not import or names an unknown
    variant, or is given an unknown `--config.X`, ends the command with one line and exit code 2, not
    ml_collections' traceback."""
    problem = config_problem(config_argument(argv, default), config_overrides(argv))
    if problem:
        sys.exit(report_error(problem, EXIT_BAD_INPUT))
