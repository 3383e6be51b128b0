"""`python -m cnl_core run CONFIG`: a whole run from a JSON or TOML file, checked whole before step 1 runs.

Each step becomes the command line it stands for and is parsed by the CLI's own parser (one that raises
instead of exiting), with its output paths checked, before anything runs: a bad flag, a value of the
wrong type or an unwritable `out` in step 5 is a sentence naming the step, not a failure after step 4
has spent minutes. The file is bounded (1 MiB), and a file nested too deeply for the parser is a
sentence too, never a RecursionError. Values are data only: text, numbers, true/false and lists of them.
"""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from pathlib import Path

from ..errors import CNLError, ParameterError
from . import arguments as A

MAX_CONFIG_BYTES = 2**20
STEP_COMMANDS = (
    "locate",
    "sweep",
    "compare",
    "evaluate",
    "matrix",
    "finetune",
    "decouple",
    "specificity",
    "inspect",
    "steer",
    "lm-eval",
    "export",
)
MODEL_COMMANDS = (
    "locate",
    "sweep",
    "evaluate",
    "matrix",
    "finetune",
    "decouple",
    "specificity",
    "inspect",
    "steer",
    "lm-eval",
)  # the steps the config's 'model' table applies to
_OPTION = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class StepParser(argparse.ArgumentParser):
    """The CLI's parser for checking config steps: a refusal is a ParameterError, never an exit."""

    def error(self, message: str):
        raise ParameterError(message)

    def exit(self, status: int = 0, message: str | None = None):
        raise ParameterError((message or "this option ends the program").strip())


def read_config(path: Path) -> dict:
    """The config as a dict with a 'model' table and a list of 'steps' tables, or a sentence naming the file."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ParameterError(f"Config {path.name} is over {MAX_CONFIG_BYTES // 2**20} MiB; a config lists steps.")
        text = raw.decode("utf-8")
        config = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except RecursionError as exc:
        raise ParameterError(f"Config {path.name} is nested too deeply to be a config.") from exc
    except (OSError, ValueError) as exc:  # ValueError: bad JSON/TOML, bad UTF-8, a number too long
        raise ParameterError(f"Could not read config {path}: {str(exc)[:300]}") from exc
    if (
        not isinstance(config, dict)
        or not isinstance(config.get("steps", []), list)
        or not all(isinstance(s, dict) for s in config.get("steps", []))
        or not isinstance(config.get("model", {}), dict)
    ):
        raise ParameterError(f"Config {path.name} needs a 'model' table and a list of 'steps' (tables).")
    return config


def _shown(value) -> str:
    return repr(value)[:60]


def _scalar(value) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def step_argv(where: str, options: dict) -> list[str]:
    """A step's options as command-line words; every key must name an option and every value be plain data."""
    argv: list[str] = []
    for key, value in options.items():
        if not isinstance(key, str) or not _OPTION.fullmatch(key) or key in ("help", "h"):
            raise ParameterError(f"{where}: {_shown(key)} is not an option name.")
        if key == "files":
            files = [value] if isinstance(value, str) else value
            if not isinstance(files, list) or not all(_scalar(v) for v in files):
                raise ParameterError(f"{where}: 'files' must be a list of file names, not {_shown(value)}.")
            argv += [str(v) for v in files]
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is None or value is False:
            continue
        elif _scalar(value):
            argv.append(f"{flag}={value}")  # with '=': a value starting with '-' is never read as a flag
        elif isinstance(value, list) and all(_scalar(v) for v in value):
            argv += [flag] + [str(v) for v in value]
        else:
            raise ParameterError(
                f"{where}: '{key}' must be text, a number, true/false or a list of them, not {_shown(value)}."
            )
    return argv


def plan_steps(config: dict) -> list[list[str]]:
    """Every step's command line, each parsed and its output paths checked; the first problem is a sentence."""
    from . import build_parser

    parser = build_parser(StepParser)
    model = config.get("model", {})
    plans = []
    for i, step in enumerate(config.get("steps", []), 1):
        step = dict(step)
        command = step.pop("command", None)
        if command not in STEP_COMMANDS:
            raise ParameterError(
                f"Step {i}: unknown command {_shown(command)}; a step runs one of {', '.join(STEP_COMMANDS)}."
            )
        where = f"Step {i} ({command})"
        argv = [command] + step_argv(where, {**model, **step} if command in MODEL_COMMANDS else step)
        try:
            A.check_outputs(parser.parse_args(argv))
        except CNLError as exc:
            raise ParameterError(f"{where}: {exc}") from exc
        plans.append(argv)
    return plans


def cmd_run(args) -> list:
    """Run the steps of a JSON or TOML config file in order, sharing one loaded model."""
    from . import main

    plans = plan_steps(read_config(Path(args.config)))
    outputs = []
    for i, argv in enumerate(plans, 1):
        print(f"\n== step {i}: {' '.join(argv)}")
        try:
            outputs.append(main(argv, exit_on_error=False))
        except CNLError as exc:
            raise type(exc)(f"Step {i} ({argv[0]}): {exc}") from exc
    return outputs
