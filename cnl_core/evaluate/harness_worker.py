"""The child process that runs lm-evaluation-harness for a shared dashboard's visitor (harness_sandbox.py starts it).

Why a child: a harness run renders the visitor's templates and reads the visitor's data with the harness's
own code. Here that happens in a process of its own, started as a plain script (`python -I`: none of the
server's modules, no PYTHONPATH), which before it reads anything sets its own limits (CPU seconds, address
space, file size), runs in its own temporary folder (HOME, TMPDIR and the Hugging Face caches inside it),
has the `evaluate` package made unimportable (the harness sends unknown metric names there, which loads and
runs scripts), renders templates in a Jinja sandbox that caps string and loop sizes, and holds no model:
every loglikelihood and generation request goes to the server over a pipe as plain text (newline-delimited
JSON, no Python objects), where the model's lock is taken per batch and the visitor's intervention applied.
Cancel, a closed tab or a limit kills it; its folder is deleted.

Protocol (one JSON object per line): the server sends the job, the child answers {"op": "ready"} (or
{"op": "error"}); then for each {"op": "run"} the child runs `simple_evaluate` once, asking
{"op": "loglikelihood" | "loglikelihood_rolling" | "generate_until", "args": [...]} and reading
{"result": [...]}, and ends with {"op": "results", "out": {...}}; {"op": "exit"} ends it.
"""

import json
import os
import resource
import sys
from types import ModuleType
from typing import cast

CHUNK = 64  # requests per message: the server checks Cancel between messages
MAX_RANGE = 10_000  # a template's range()
MAX_TEXT = 100_000  # characters a template's '*' or '+' may make


def _limits(cpu_s: int, memory_bytes: int, file_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _sandbox_templates() -> None:
    """The harness's Jinja environment replaced by a sandbox that refuses `__` attributes, caps range() and the
    size of what '*' and '+' build (a template cannot fill the memory or loop for ever: the CPU limit is behind)."""
    import jinja2.sandbox
    import lm_eval.utils as harness_utils
    from jinja2.sandbox import SandboxedEnvironment

    jinja2.sandbox.MAX_RANGE = MAX_RANGE

    class Capped(SandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+"})

        def call_binop(self, context, operator, left, right):
            if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
                raise jinja2.sandbox.SecurityError("a power above 64 is not computed here")
            if operator == "*":
                seq, times = (left, right) if isinstance(left, (str, list)) else (right, left)
                if isinstance(seq, (str, list)) and isinstance(times, int) and len(seq) * max(times, 0) > MAX_TEXT:
                    raise jinja2.sandbox.SecurityError(f"a template may build at most {MAX_TEXT:,} characters")
            out = super().call_binop(context, operator, left, right)
            if isinstance(out, (str, list)) and len(out) > MAX_TEXT:
                raise jinja2.sandbox.SecurityError(f"a template may build at most {MAX_TEXT:,} characters")
            return out

    env = harness_utils.env
    capped = Capped(loader=env.loader, undefined=env.undefined, keep_trailing_newline=env.keep_trailing_newline)
    capped.filters.update(env.filters)
    harness_utils.env = capped


class _Pipe:
    def __init__(self, fd_in: int, fd_out: int):
        self.rx, self.tx = os.fdopen(fd_in, "rb"), os.fdopen(fd_out, "wb")

    def send(self, message: dict) -> None:
        self.tx.write(json.dumps(message, default=_plain).encode() + b"\n")
        self.tx.flush()

    def receive(self) -> dict:
        line = self.rx.readline()
        if not line:
            raise SystemExit(0)  # the server went away
        return json.loads(line)


def _plain(value):
    """numpy numbers and the like as JSON numbers; anything else as its text."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _remote_lm(pipe: _Pipe):
    from lm_eval.api.model import LM

    class RemoteLM(LM):
        """The model, reached through the server: every request is plain text out, numbers or text back."""

        def _ask(self, op: str, requests) -> list:
            out = []
            args = [list(r.args) for r in requests]
            for start in range(0, len(args), CHUNK):
                pipe.send({"op": op, "args": args[start : start + CHUNK]})
                answer = pipe.receive()
                if "result" not in answer:
                    raise SystemExit(0)  # the server stopped this run
                out += answer["result"]
            return out

        def loglikelihood(self, requests):
            return [tuple(r) for r in self._ask("loglikelihood", requests)]

        def loglikelihood_rolling(self, requests):
            return self._ask("loglikelihood_rolling", requests)

        def generate_until(self, requests):
            return self._ask("generate_until", requests)

    return RemoteLM()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def main(argv: list[str]) -> None:
    fd_in, fd_out, cpu_s, memory_bytes, file_bytes = (int(a) for a in argv[1:6])
    _limits(cpu_s, memory_bytes, file_bytes)
    pipe = _Pipe(fd_in, fd_out)
    job = pipe.receive()
    # an unknown metric name cannot load a script: the import fails (None in sys.modules is Python's way to block
    # an import; typeshed types its values as modules only)
    sys.modules["evaluate"] = cast(ModuleType, None)
    try:
        _sandbox_templates()
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager

        manager = TaskManager(include_path=job["include_path"], include_defaults=job["catalogue"])
        unknown = [t for t in job["tasks"] if t not in set(manager.all_tasks)]
        if unknown:
            pipe.send({"op": "error", "kind": "unknown", "message": unknown[0]})
            return
        lm = _remote_lm(pipe)
        pipe.send({"op": "ready"})
    except Exception as exc:  # noqa: BLE001  (reported to the server as one line; the child then ends)
        pipe.send({"op": "error", "kind": "setup", "message": _first_line(exc)})
        return
    while pipe.receive().get("op") == "run":
        try:
            out = simple_evaluate(
                model=lm,
                tasks=job["tasks"],
                task_manager=manager,
                num_fewshot=job["num_fewshot"],
                limit=job["limit"],
                bootstrap_iters=job["bootstrap_iters"],
                gen_kwargs=job["gen_kwargs"],
                log_samples=False,
            )
        except Exception as exc:  # noqa: BLE001
            pipe.send({"op": "error", "kind": "run", "message": _first_line(exc)})
            return
        keep = ("results", "n-samples", "n-shot", "higher_is_better")
        pipe.send({"op": "results", "out": {k: out.get(k) for k in keep if k in out}})


if __name__ == "__main__":
    main(sys.argv)
