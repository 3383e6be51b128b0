"""Several CLI commands in one process, each through the CLI's entry point (`python -m cnl_core` calls main(argv))
with its own output and exit status: Python and torch start once, not once per command (5 s or more each on 2
cores; each command still loads the model, from disk). Under torchrun the process group is also joined once and
kept for every command: the CLI joins it per command and leaves it at the end, and a group re-created at once met
its partner's old address here (gloo: connection refused).

A command that raises (not a SystemExit) gets exit status 1 and its traceback in its stderr, as `python -m
cnl_core` would; one process goes on with the next command, and under torchrun the run stops there (the other
process would wait for this one), naming the command.

    python -m tests.many_commands '<json: [argv, ...] or [{"argv": [...], "env": {...}}, ...]>' OUT

Each command may set environment variables for its own run (a score cache, the variables torchrun sets). The
results, a list of {"returncode", "stdout", "stderr"}, are written to OUT-<rank>.json (OUT-0.json for one process,
one file per process under torchrun)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")


Command = list | dict  # argv, or {"argv": argv, "env": {name: value}}
UNDER_TORCHRUN = os.environ.get("WORLD_SIZE", "1") != "1"  # as this process was started (a command may set its own)


def _run_one(command: Command) -> dict:
    from cnl_core.cli import main

    argv, env = (command["argv"], command.get("env", {})) if isinstance(command, dict) else (command, {})
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main(argv)
            except SystemExit as exc:  # what the interpreter does with it
                if isinstance(exc.code, int) or exc.code is None:
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
                    code = 1
            except Exception:
                traceback.print_exc()
                code = 1
                if UNDER_TORCHRUN:
                    print(f"command {argv} raised:\n{stderr.getvalue()}", file=sys.__stderr__)
                    raise
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"returncode": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def _main(commands: list[Command], out: str) -> None:
    from cnl_core import parallel

    leave, parallel.leave = parallel.leave, lambda: None  # one process group for every command
    try:
        results = [_run_one(c) for c in commands]
    finally:
        leave()
    Path(f"{out}-{os.environ.get('RANK', '0')}.json").write_text(json.dumps(results))


def _plain(commands: Sequence[Command]) -> list[Command]:
    return [
        {"argv": [str(a) for a in c["argv"]], "env": {k: str(v) for k, v in c.get("env", {}).items()}}
        if isinstance(c, dict)
        else [str(a) for a in c]
        for c in commands
    ]


def run_many(commands: Sequence[Command], cache: str | Path, processes: int = 1, timeout: int = 900) -> list:
    """Run the commands one after another in one process (or under `torchrun --nproc_per_node processes`, where
    the list holds one list of results per process); one thread per process, CNL_CACHE_DIR=cache unless a
    command sets its own."""
    outer = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    full = {**outer, "CNL_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = Path(cache) / "many-commands"
    head = [sys.executable] if processes == 1 else [str(TORCHRUN), "--standalone", "--nproc_per_node", str(processes)]
    r = subprocess.run(
        [*head, "-m", "tests.many_commands", json.dumps(_plain(commands)), str(out)],
        capture_output=True,
        text=True,
        env=full,
        timeout=timeout,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    per_process = [
        [
            subprocess.CompletedProcess(c, **o)
            for c, o in zip(commands, json.loads(Path(f"{out}-{rank}.json").read_text()), strict=True)
        ]
        for rank in range(processes)
    ]
    return per_process[0] if processes == 1 else per_process


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]), sys.argv[2])
