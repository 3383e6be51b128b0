"""lm-evaluation-harness for a shared dashboard's visitor: the harness in a child process, the model here.

Why: a harness run is visitor-controlled work (their templates, their data, task names that pick code).
`IsolatedHarness` has the same `evaluate(iv)` as `Harness`, but the harness runs in harness_worker.py's
child process, with limits on CPU seconds, memory, file size and wall time, in a temporary folder of its
own (its caches inside, deleted afterwards), offline unless the operator allows the Hub, and this server
never imports a module a visitor named. The child reaches the model through three narrow calls
(loglikelihood, loglikelihood_rolling, generate_until) with text in and numbers or text out; here each
batch of them takes the model's lock and the job's intervention on its own, so other visitors' short jobs
take their turns between the batches of a long harness run. Cancel (the job's cancel scope, checked
between messages and inside every model step) or a limit kills the child at once.

The task files the child reads are copies, made here: in shared mode every YAML is read against the
allowlist (task_allowlist.py) and written back as plain data with its data files pointed at their copies.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from .. import fields as F
from ..errors import HarnessError
from ..model.hooks import Intervention
from ..model.loading import LoadedModel
from ..progress import raise_if_cancelled
from .harness import HarnessSettings, TaskScores, parse_results, require_harness, serve
from .task_allowlist import read_allowed_task
from .task_files import DATA_SUFFIXES, task_yaml_files

WORKER = Path(__file__).with_name("harness_worker.py")
GENERATE = "generate_until"
OPS = ("loglikelihood", "loglikelihood_rolling", GENERATE)  # the three calls the child may make


@dataclass(frozen=True)
class SandboxLimits:
    """What one child may use (the defaults are in fields.py)."""

    cpu_s: int = F.HARNESS_CHILD_CPU_S
    memory_bytes: int = F.HARNESS_CHILD_MEMORY
    wall_s: float = F.HARNESS_CHILD_WALL_S
    file_bytes: int = F.HARNESS_CHILD_FILE_BYTES
    message_bytes: int = F.HARNESS_MESSAGE_BYTES
    text_chars: int = F.HARNESS_REQUEST_CHARS
    max_gen_toks: int = F.HARNESS_SHARED_GEN_TOKS
    hub: bool = False  # the operator allows the harness's catalogue tasks to fetch their data from the Hub


def prepare_task_folder(source: Path | None, job: Path) -> Path | None:
    """Copies of the source folder's task YAMLs (each read against the allowlist, written back as plain data with
    its data files pointed at their copies) and of the data files they name, under job/tasks; None without one."""
    if source is None:
        return None
    target = job / "tasks"
    target.mkdir()
    data_names = {p.name for p in source.iterdir() if p.is_file() and p.name.endswith(DATA_SUFFIXES)}
    for path in task_yaml_files(source, strict=True):
        data = read_allowed_task(path, path.name, data_names)
        kwargs = data.get("dataset_kwargs", {})
        if "data_files" in kwargs:
            kwargs["data_files"] = _pointed(kwargs["data_files"], target)
        (target / f"{path.stem}.yaml").write_text(json.dumps(data))  # JSON is YAML: plain data, no tags
    for name in data_names:
        shutil.copyfile(source / name, target / name)
    return target


def _pointed(files, folder: Path):
    if isinstance(files, str):
        return str(folder / files)
    if isinstance(files, list):
        return [str(folder / f) for f in files]
    return {split: _pointed(v, folder) for split, v in files.items()}


class IsolatedHarness:
    """The harness ready to score one loaded model on fixed tasks, run in a child process (see the module)."""

    def __init__(
        self,
        lm: LoadedModel,
        settings: HarnessSettings,
        limits: SandboxLimits | None = None,
        scratch: Path | None = None,
    ):
        """`scratch`: where the child's folder is made (a visitor's jobs folder; default: the system's temp)."""
        require_harness()
        from lm_eval.models.huggingface import HFLM

        self.lm, self.settings, self.limits = lm, settings, limits or SandboxLimits()
        self.model = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=settings.batch_size)
        self.folder = Path(tempfile.mkdtemp(prefix="cnl-harness-", dir=scratch))
        self._buffer = b""
        self.proc: subprocess.Popen | None = None
        try:
            include = prepare_task_folder(Path(settings.include_path) if settings.include_path else None, self.folder)
            self._start(include)
        except BaseException:
            self.close()
            raise

    def _start(self, include: Path | None) -> None:
        s, lim = self.settings, self.limits
        home = self.folder / "home"
        home.mkdir()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(home),
            "HF_HOME": str(home / "hf"),
            "HF_DATASETS_CACHE": str(home / "datasets"),
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONHASHSEED": "0",
        }
        if not lim.hub:
            env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                str(WORKER),
                str(child_in),
                str(child_out),
                str(lim.cpu_s),
                str(lim.memory_bytes),
                str(lim.file_bytes),
            ],
            pass_fds=(child_in, child_out),
            cwd=home,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(child_in)
        os.close(child_out)
        self._tx, self._rx = os.fdopen(to_child, "wb"), from_child
        self._deadline = time.monotonic() + lim.wall_s
        self._send(
            {
                "tasks": list(s.tasks),
                "include_path": str(include) if include else None,
                "catalogue": include is None or lim.hub,
                "limit": s.limit,
                "num_fewshot": s.num_fewshot,
                "bootstrap_iters": s.bootstrap_iters,
                "gen_kwargs": {"max_gen_toks": s.max_gen_toks} if s.max_gen_toks else None,
            }
        )
        answer = self._receive()
        if answer.get("op") != "ready":
            self._refuse(answer)

    def evaluate(self, iv: Intervention | None = None) -> tuple[dict[str, TaskScores], dict]:
        """(typed scores per task, the harness's output) with `iv` applied to every batch the child asks for."""
        self._send({"op": "run"})
        while True:
            message = self._receive()
            op = message.get("op")
            if op == "results":
                out = message.get("out")
                if not isinstance(out, dict) or not isinstance(out.get("results"), dict):
                    raise HarnessError("lm-evaluation-harness ended its run without results.")
                return parse_results(out), out
            if op not in OPS:
                self._refuse(message)
            self._send({"result": self._serve(op, message.get("args"), iv)})

    def _serve(self, op: str, args, iv: Intervention | None) -> list:
        """One message of requests, answered batch by batch (harness.serve: each batch takes the lock with the edit)."""
        from lm_eval.api.instance import Instance

        requests = [Instance(op, {}, self._checked(op, a), i) for i, a in enumerate(self._list(args))]
        out = serve(self.model, self.lm, op, requests, iv, self.settings.batch_size)
        return [list(r) if isinstance(r, tuple) else r for r in out]

    def _list(self, args) -> list:
        if not isinstance(args, list) or len(args) > 1024:
            raise HarnessError("lm-evaluation-harness sent a request this lab does not serve.")
        return args

    def _checked(self, op: str, arg) -> tuple:
        """A request's arguments as the model may see them: texts of bounded size; generation greedy and bounded."""
        texts = arg[:1] if op == GENERATE and isinstance(arg, list) else arg  # generation: (context, its settings)
        if not isinstance(arg, list) or not arg or not all(isinstance(t, str) for t in texts):
            raise HarnessError("lm-evaluation-harness sent a request this lab does not serve.")
        if sum(len(t) for t in texts) > self.limits.text_chars:
            raise HarnessError(
                f"A task's prompt is longer than {self.limits.text_chars:,} characters; this lab scores shorter ones."
            )
        if op != GENERATE:
            return tuple(arg)
        given = arg[1] if len(arg) > 1 and isinstance(arg[1], dict) else {}
        until = given.get("until") or []
        until = [u for u in (until if isinstance(until, list) else [until]) if isinstance(u, str)][:8]
        toks = given.get("max_gen_toks")
        toks = (
            min(int(toks), self.limits.max_gen_toks) if isinstance(toks, int) and toks > 0 else self.limits.max_gen_toks
        )
        return arg[0], {"until": [u[:100] for u in until], "max_gen_toks": toks, "do_sample": False}

    def _send(self, message: dict) -> None:
        try:
            self._tx.write(json.dumps(message).encode() + b"\n")
            self._tx.flush()
        except (BrokenPipeError, OSError):
            self._ended()

    def _receive(self) -> dict:
        """The child's next message; Cancel, the wall-time limit and a child that died are checked twice a second."""
        while b"\n" not in self._buffer:
            raise_if_cancelled()
            if time.monotonic() > self._deadline:
                raise HarnessError(
                    f"The lm-eval run took longer than this lab's limit of "
                    f"{self.limits.wall_s / 60:.0f} minutes and was stopped."
                )
            ready, _, _ = select.select([self._rx], [], [], 0.5)
            if not ready:
                continue
            chunk = os.read(self._rx, 1 << 20)
            if not chunk:
                self._ended()
            self._buffer += chunk
            if len(self._buffer) > self.limits.message_bytes:
                raise HarnessError("lm-evaluation-harness sent more than this lab reads at once.")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            raise HarnessError("lm-evaluation-harness sent a message this lab cannot read.") from None
        if not isinstance(message, dict):
            raise HarnessError("lm-evaluation-harness sent a message this lab cannot read.")
        return message

    def _ended(self) -> None:
        code = self.proc.wait(timeout=5) if self.proc is not None else None
        why = {-9: "its CPU-time limit", -24: "its CPU-time limit", -25: "its file-size limit"}.get(code or 0)
        raise HarnessError(
            "lm-evaluation-harness stopped before it finished"
            + (f": it reached {why}." if why else " (it may have run out of its memory limit).")
        )

    def _refuse(self, message: dict) -> NoReturn:
        text = str(message.get("message", ""))[:300].replace(str(self.folder), "<task folder>")
        if message.get("kind") == "unknown":
            where = "your uploaded tasks" if self.settings.include_path else "the harness's catalogue"
            raise HarnessError(f"Unknown lm-eval task {text!r}: not in {where}.")
        raise HarnessError(f"lm-evaluation-harness could not run {', '.join(self.settings.tasks)}: {text}")

    def close(self) -> None:
        """Kill the child (and anything it started) and delete its folder."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 9)
            except OSError:
                pass
            self.proc.wait(timeout=10)
        if getattr(self, "_tx", None) is not None:
            try:
                self._tx.close()
            except OSError:
                pass
            del self._tx  # closed: getattr(self, "_tx", None) is None again
        if getattr(self, "_rx", None) is not None:
            try:
                os.close(self._rx)
            except OSError:
                pass
            del self._rx
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> IsolatedHarness:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
