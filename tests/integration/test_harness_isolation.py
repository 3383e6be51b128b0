"""Issue #32 on the built-in model: a visitor's lm-eval run in its child process (harness_sandbox.py).

The child's numbers equal the in-process run's on the same task; a template that loops or builds a huge
string is stopped by the child's own limits with a sentence, while the server goes on; Cancel kills the
child at once and frees the model; the model's lock is taken per batch, so another visitor's model call
gets its turn in the middle of a harness run; the child's folder is gone afterwards."""

import json
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from cnl_core.errors import Cancelled, HarnessError  # noqa: E402
from cnl_core.evaluate.harness import Harness, HarnessSettings  # noqa: E402
from cnl_core.evaluate.harness_sandbox import IsolatedHarness, SandboxLimits  # noqa: E402
from cnl_core.model.hooks import Intervention  # noqa: E402
from cnl_core.model.neurons import NeuronSet  # noqa: E402
from cnl_core.progress import cancel_scope  # noqa: E402
from tests.integration.test_lm_eval import offline  # noqa: E402,F401  # the harness stays offline

TASK = """task: iso_sums
dataset_path: json
dataset_kwargs:
  data_files:
    test: sums.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{text}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
  - metric: brier_score
"""
PLAIN = "Question: What is {{a}} plus {{b}}?\\nAnswer:"


def task_folder(root: Path, text: str = PLAIN, rows: int = 8, absolute: bool = False) -> Path:
    """The task with its data, named by its bare file name (an upload's form) or by its absolute path (what a
    task read in this process needs)."""
    folder = root / ("local" if absolute else "tasks")
    folder.mkdir(exist_ok=True)
    lines = []
    for i in range(rows):
        a, b = i + 2, 3 * i + 1
        choices = [f" {a + b}", f" {a + b + 1}", f" {a + b - 3}"]
        label = i % 3
        choices[0], choices[label] = choices[label], choices[0]
        lines.append(json.dumps({"a": a, "b": b, "choices": choices, "label": label}))
    (folder / "sums.jsonl").write_text("\n".join(lines) + "\n")
    task = TASK.format(text=text)
    (folder / "iso_sums.yaml").write_text(task.replace("sums.jsonl", str(folder / "sums.jsonl")) if absolute else task)
    return folder


def test_the_child_scores_as_the_server_does_and_leaves_nothing(lm, tmp_path):
    settings = HarnessSettings(tasks=("iso_sums",), include_path=str(task_folder(tmp_path)))
    neurons = NeuronSet.from_pairs(lm.grid, [[layer, i * 37] for layer in range(lm.grid.n_layers) for i in range(20)])
    iv = Intervention(neurons, "zero")
    with IsolatedHarness(lm, settings) as isolated:
        child = [isolated.evaluate(None)[0], isolated.evaluate(iv)[0]]
        folder = isolated.folder
    local = Harness(lm, HarnessSettings(tasks=("iso_sums",), include_path=str(task_folder(tmp_path, absolute=True))))
    here = [local.evaluate(None)[0], local.evaluate(iv)[0]]
    for a, b in zip(child, here):
        assert {k: m.value for k, m in a["iso_sums"].metrics.items()} == {
            k: m.value for k, m in b["iso_sums"].metrics.items()
        }
    assert child[0]["iso_sums"].metrics != child[1]["iso_sums"].metrics  # the intervention reached the child's run
    assert not folder.exists()


# The child's CPU limit: 3 s stops the endless loop soon after start-up; the other cases get room for the child's
# imports (about 3 CPU seconds on a slow machine), so that what stops them is the sandbox, not the limit.
@pytest.mark.parametrize(
    "template,words,cpu_s",
    [
        ("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}x", "CPU-time limit", 3),
        ("{{ 'x' * 1000000000 }}", "at most 100,000 characters", 60),
        ("{{ ''.__class__.__mro__ }}", "could not run iso_sums", 60),
    ],
)
def test_a_hostile_template_is_stopped_in_the_child_with_a_sentence(lm, tmp_path, template, words, cpu_s):
    settings = HarnessSettings(tasks=("iso_sums",), include_path=str(task_folder(tmp_path, template, rows=2)))
    started = time.monotonic()
    with pytest.raises(HarnessError, match=words):
        with IsolatedHarness(lm, settings, SandboxLimits(cpu_s=cpu_s)) as isolated:
            isolated.evaluate(None)
    assert time.monotonic() - started < 60
    assert lm.lock.acquire(timeout=1)  # the server's model is free
    lm.lock.release()


def test_cancel_kills_the_child_and_other_calls_take_turns_between_batches(lm, tmp_path):
    settings = HarnessSettings(tasks=("iso_sums",), include_path=str(task_folder(tmp_path, rows=300)), batch_size=4)
    cancel, outcome, turns = threading.Event(), {}, []
    batches = []
    counter = lm.model.register_forward_hook(lambda *a: batches.append(threading.get_ident()))

    def run():
        try:
            with cancel_scope(cancel), IsolatedHarness(lm, settings) as isolated:
                outcome["proc"] = isolated.proc
                isolated.evaluate(None)
        except Cancelled as exc:
            outcome["cancelled"] = exc

    worker = threading.Thread(target=run)
    try:
        worker.start()
        deadline = time.monotonic() + 120
        while len(batches) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(batches) >= 3
        for _ in range(3):  # another visitor's short model calls, while the harness run goes on
            asked = time.monotonic()
            with lm.lock:
                turns.append(time.monotonic() - asked)
        cancel.set()
        worker.join(60)
    finally:
        counter.remove()
    assert not worker.is_alive() and "cancelled" in outcome
    assert outcome["proc"].poll() is not None  # the child is gone
    assert max(turns) < 10  # a turn between batches, not after the whole run (minutes on this CPU)
