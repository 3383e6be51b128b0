"""Bridge to EleutherAI's lm-evaluation-harness: its tasks and metrics, on the model we already hold.

Researchers judge a model change on the harness, not on a tool's own scorer. Here the harness's own
HF model class (`HFLM`) wraps the loaded model and tokenizer (no second load), its own
`simple_evaluate` scores the tasks, and the neuron interventions are this library's context manager
around that call: nothing is patched into the harness. The harness is an optional extra
(requirements-lmeval.txt); without it every entry point says how to install it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, cast

from .. import fields as F
from .. import shared_mode
from ..errors import HarnessError, ParameterError
from ..model.hooks import Intervention, intervene
from ..model.loading import LoadedModel
from ..options import HARNESS
from ..progress import raise_if_cancelled
from .task_files import check_task_folder

_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_NOT_METRICS = {"alias", "name", "sample_len", "samples"}


def harness_available() -> tuple[bool, str]:
    """(installed, a sentence for the user): the sentence says how to install it when it is not."""
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        return False, (f"lm-evaluation-harness is not installed. Install the optional extra with: {HARNESS.install}.")
    return True, f"lm-evaluation-harness {harness_version()} is installed."


def harness_version() -> str | None:
    try:
        return metadata.version("lm_eval")
    except metadata.PackageNotFoundError:
        return None


def require_harness() -> None:
    ok, why = harness_available()
    if not ok:
        raise HarnessError(why)


def parse_tasks(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Task names from "a,b" (or a list), stripped, each checked to be a plain task name."""
    items = F.TASK_NAMES.check(text).split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(t.strip() for t in items if t and t.strip()))
    if not names:
        raise ParameterError("Name at least one lm-eval task (comma-separated, e.g. arc_easy,hellaswag).")
    bad = [t for t in names if not _TASK_NAME.match(t)]
    if bad:
        raise ParameterError(f"Not an lm-eval task name: {bad[0]!r} (letters, digits, '_', '-' and '.' only).")
    return names


@dataclass(frozen=True)
class HarnessSettings:
    """What the harness runs: tasks, where extra task YAMLs live, and the harness's own run settings."""

    tasks: tuple[str, ...]
    include_path: str | None = None  # a folder of the user's own task YAMLs (the harness's --include_path)
    limit: int | None = None  # samples per task (None: all)
    num_fewshot: int | None = None  # None: each task's own
    max_gen_toks: int | None = None  # None: each generation task's own
    batch_size: int = HARNESS.batch_size
    bootstrap_iters: int = HARNESS.bootstrap_iters

    def __post_init__(self):
        object.__setattr__(self, "tasks", parse_tasks(self.tasks))
        for field, value in (
            (F.HARNESS_LIMIT, self.limit),
            (F.HARNESS_FEWSHOT, self.num_fewshot),
            (F.HARNESS_GEN_TOKS, self.max_gen_toks),
        ):
            if value is not None:
                field.typed(value)
        F.BATCH.typed(self.batch_size)
        F.BOOTSTRAP_ITERS.typed(self.bootstrap_iters)

    @staticmethod
    def from_inputs(
        tasks, include_path=None, limit=None, num_fewshot=None, max_gen_toks=None, batch_size=None, bootstrap_iters=None
    ) -> HarnessSettings:
        """From a form or the command line (the one conversion both use): numbers may be text; no limit (None),
        few-shot -1 and new tokens 0 (or empty, or None) mean each task's own; an empty folder means none."""
        # Integer fields give ints; fields.NumberField types every value as int | float.
        return HarnessSettings(
            tasks=parse_tasks(tasks or ""),
            include_path=F.TASK_FOLDER.check(include_path).strip() or None,
            limit=None if limit is None else cast(int, F.HARNESS_LIMIT.check(limit)),
            num_fewshot=cast("int | None", F.HARNESS_FEWSHOT.read(num_fewshot)),
            max_gen_toks=cast("int | None", F.HARNESS_GEN_TOKS.read(max_gen_toks)),
            batch_size=HARNESS.batch_size if batch_size is None else cast(int, F.BATCH.check(batch_size)),
            bootstrap_iters=(
                HARNESS.bootstrap_iters
                if bootstrap_iters is None
                else cast(int, F.BOOTSTRAP_ITERS.check(bootstrap_iters))
            ),
        )


@dataclass(frozen=True)
class Metric:
    """One metric of one task as the harness reports it, with the harness's standard error (None: it gives none)."""

    value: float
    stderr: float | None = None


@dataclass(frozen=True)
class TaskScores:
    """A task's (or group's) metrics; names are the harness's "metric,filter" keys, e.g. "acc,none"."""

    task: str
    metrics: dict[str, Metric]
    n: int | None = None  # samples scored (None for a group of tasks)
    num_fewshot: int | None = None
    higher_is_better: dict[str, bool] | None = None

    def primary(self) -> str | None:
        """The metric a chart shows: the first the harness lists (acc before acc_norm, strict before flexible)."""
        return next(iter(self.metrics), None)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> float | None:
    """A finite float from a harness value; "N/A", NaN and the like give None."""
    return float(value) if _is_number(value) and math.isfinite(value) else None


def parse_results(out: dict) -> dict[str, TaskScores]:
    """The harness's `simple_evaluate` output as typed scores per task and group, in the harness's order."""
    scores = {}
    for task, row in out["results"].items():
        metrics = {}
        for key, value in row.items():
            name, _, filt = key.partition(",")
            number = _number(value)
            if name in _NOT_METRICS or name.endswith("_stderr") or number is None:
                continue
            metrics[key] = Metric(number, _number(row.get(f"{name}_stderr,{filt}" if filt else f"{name}_stderr")))
        samples = out.get("n-samples", {}).get(task, {})
        shots = out.get("n-shot", {}).get(task)
        scores[task] = TaskScores(
            task=task,
            metrics=metrics,
            n=samples.get("effective"),
            num_fewshot=shots if isinstance(shots, int) else None,
            higher_is_better=out.get("higher_is_better", {}).get(task),
        )
    return scores


def task_manager(settings: HarnessSettings):
    """The harness's TaskManager for these tasks, every name checked, built before any model is loaded; None on a
    shared dashboard, where only the harness's child process reads task files (harness_sandbox.py).

    An include path's YAMLs are read as data first (task_files.py): a folder too big to be a task folder or a
    malformed YAML is named. When every task is in the include path, the harness's own task catalogue
    (thousands of YAML files, seconds to index) is not read.
    """
    require_harness()
    if shared_mode.current().shared:
        return None
    from lm_eval.tasks import TaskManager

    if settings.include_path is not None:
        folder = Path(F.TASK_FOLDER.check(settings.include_path))
        if not folder.is_dir():
            raise ParameterError(f"The include path {settings.include_path!r} is not a folder of task YAML files.")
        check_task_folder(folder)
        local = TaskManager(include_path=settings.include_path, include_defaults=False)
        if set(settings.tasks) <= set(local.all_tasks):
            return local
    manager = TaskManager(include_path=settings.include_path)
    known = set(manager.all_tasks)
    unknown = [t for t in settings.tasks if t not in known]
    if unknown:
        where = f" or in {settings.include_path}" if settings.include_path else " (give your own with --include-path)"
        raise HarnessError(
            f"Unknown lm-eval task {unknown[0]!r}: not in the harness's catalogue{where}. "
            "List the catalogue with: lm-eval ls tasks"
        )
    return manager


def serve(model, lm: LoadedModel, op: str, requests: list, iv: Intervention | None, batch_size: int) -> list:
    """The harness's requests of one kind answered by its HF model class on our model, one batch at a time: each
    batch takes the model's lock with `iv` applied (its hooks act for this thread only), so other jobs take their
    turns between batches and the lock is never held around a whole harness run. A cancelled job stops between
    batches (and inside one, at its next model step)."""
    out: list = []
    step = max(1, batch_size)
    for start in range(0, len(requests), step):
        raise_if_cancelled()
        with intervene(lm, iv):
            out += getattr(model, op)(requests[start : start + step], disable_tqdm=True)
    return out


def batched_lm(model, lm: LoadedModel, iv: Intervention | None, batch_size: int):
    """An lm-eval model that answers through `serve`: the harness's own HFLM underneath, batch by batch."""
    from lm_eval.api.model import LM

    class Batched(LM):
        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return serve(model, lm, "loglikelihood", requests, iv, batch_size)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return serve(model, lm, "loglikelihood_rolling", requests, iv, batch_size)

        def generate_until(self, requests, disable_tqdm: bool = False):
            return serve(model, lm, "generate_until", requests, iv, batch_size)

    return Batched()


class Harness:
    """The harness ready to score one loaded model on fixed tasks, unmodified or under an intervention, in this
    process (the CLI, a local dashboard; a shared dashboard runs harness_sandbox.IsolatedHarness instead)."""

    def __init__(self, lm: LoadedModel, settings: HarnessSettings, manager=None):
        require_harness()
        from lm_eval.models.huggingface import HFLM

        self.lm, self.settings = lm, settings
        self.manager = manager if manager is not None else task_manager(settings)
        # The harness's own model class around our model and tokenizer: nothing is loaded again.
        self.model = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=settings.batch_size)

    def evaluate(self, iv: Intervention | None = None, log_samples: bool = False) -> tuple[dict[str, TaskScores], dict]:
        """(typed scores per task, the harness's raw output) with `iv` applied to every forward pass."""
        from lm_eval import simple_evaluate

        s = self.settings
        try:
            out = simple_evaluate(
                model=batched_lm(self.model, self.lm, iv, s.batch_size),
                tasks=list(s.tasks),
                task_manager=self.manager,
                num_fewshot=s.num_fewshot,
                limit=s.limit,
                bootstrap_iters=s.bootstrap_iters,
                gen_kwargs={"max_gen_toks": s.max_gen_toks} if s.max_gen_toks else None,
                log_samples=log_samples,
            )
        except (OSError, ValueError, KeyError, ImportError) as exc:  # a dataset out of reach, a task's extra package
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise HarnessError(
                f"lm-evaluation-harness could not run {', '.join(s.tasks)}: {type(exc).__name__}: {first}"
            ) from exc
        return parse_results(out), out

    def close(self) -> None:
        """Nothing to free in this process (the isolated harness kills its child here)."""

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
