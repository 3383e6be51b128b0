"""Counts for the README's shared-mode table (issue #25): seeded hostile inputs thrown at a shared dashboard.

    .venv/bin/python scripts/hostile_counts.py [--seed 0] [--per-kind 100]

Each attempt runs with shared mode on (one allowed folder) and is classed as accepted, refused with the
library's own sentence, or a crash (anything else: must be 0). Also counted, per attempt: whether the
visitor's session changed after a refusal (data lost), whether a file appeared outside the folders the
app may write (a new entry at the top of the repository, the home folder, / or /etc; the cache and the
run's own scratch folder may be written), and whether a payload's code ran (every
payload writes a marker file when it runs). The tests in tests/unit/test_shared_mode.py, test_task_files.py,
test_config_checks.py, test_fair_share.py and test_upload_guard.py check the same holes on every `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import gradio as gr  # noqa: E402

from cnl_core import fields as F  # noqa: E402
from cnl_core import shared_mode  # noqa: E402
from cnl_core.errors import CNLError  # noqa: E402
from ui.session import new_session  # noqa: E402

SCRATCH = Path(tempfile.mkdtemp(prefix="cnl-hostile-"))
MARKER = SCRATCH / "code-ran"
ALLOWED = SCRATCH / "allowed"
PAYLOAD = SCRATCH / "upload"
WATCHED = [ROOT, Path.home(), Path("/"), Path("/etc")]  # where a stray write would show (the cache is below ROOT)


def _files() -> set[Path]:
    out = set()
    for folder in WATCHED:
        for path in folder.glob("*"):
            out.add(path)
    return out


def _setup() -> None:
    ALLOWED.mkdir(parents=True)
    PAYLOAD.mkdir()
    code = f"import pathlib\npathlib.Path({str(MARKER)!r}).write_text('x')\n"
    (PAYLOAD / "x.py").write_text(code + "def fn(docs):\n    return docs\n")
    (PAYLOAD / "evil.py").write_text(
        code + "from transformers import LlamaConfig\nclass EvilConfig(LlamaConfig):\n    pass\n"
    )
    (PAYLOAD / "d.jsonl").write_text('{"q": "1+1=", "a": "2"}\n')
    (ALLOWED / "link").symlink_to("/etc")
    shared_mode.configure(shared_mode.Policy(shared=True, why="counting", allowed_paths=(ALLOWED.resolve(),)))


def _snapshot(state) -> tuple:
    return (
        state.spec,
        list(state.uploads),
        state.pending_upload,
        len(state.located),
        len(state.history),
        sorted(p.name for p in state.task_folder().glob("*")) if state.task_folder().exists() else [],
    )


PATHS = [
    "/",
    "/etc",
    "/etc/passwd",
    "~",
    "~/.ssh",
    "..",
    "../..",
    "cache",
    "cache/models/smollm2-135m",
    "/proc/self",
    "/dev/zero",
    "\\\\server\\share",
    "C:\\Windows",
    "x/../../etc",
    "",
    " ",
    "/tmp",
    str(PAYLOAD),
    str(ALLOWED / "link"),
    str(ALLOWED / ".." / "upload"),
    str(ALLOWED / "link" / "passwd"),
]


def server_paths(rng: random.Random):
    from cnl_core.data.uploads import resolve_dataset
    from ui.tabs.harness_panel import include_folder
    from ui.tabs.model_tab import load_model_ui

    path = rng.choice(PATHS)
    kind = rng.randrange(3)
    if kind == 0:
        return lambda state: load_model_ui(path, "auto", "cpu", "none", False, rng.random() < 0.5, state)
    if kind == 1:
        return lambda state: resolve_dataset(path + rng.choice(["", ".csv", ".jsonl"]))
    return lambda state: include_folder(path, state)


def _config(rng: random.Random) -> Path:
    folder = Path(tempfile.mkdtemp(dir=SCRATCH))
    config = dict(
        model_type="llama",
        vocab_size=100,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=128,
    )
    pool = [None, -1, 0, "64", 64.5, True, 10**9, 100_000, [], {}, 65, 3]
    for key in rng.sample(sorted(config)[1:], rng.randint(1, 3)):
        config[key] = rng.choice(pool)
    if rng.random() < 0.3:
        config["auto_map"] = {"AutoConfig": "evil.EvilConfig"}
        (folder / "evil.py").write_text((PAYLOAD / "evil.py").read_text())
    data = json.dumps(config).encode()
    if rng.random() < 0.2:
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
    (folder / "config.json").write_bytes(data)
    return folder


def model_configs(rng: random.Random):
    from ui.tabs.model_tab import load_model_ui

    folder = _config(rng)
    allowed = ALLOWED / folder.name
    folder.rename(allowed)  # the operator's own folder: only the file's content is hostile
    return lambda state: load_model_ui(str(allowed), "auto", "cpu", "none", False, rng.random() < 0.5, state)


ATTACKS = [
    f"process_docs: !function {PAYLOAD}/x.fn\n",
    "process_docs: !function x.fn\n",
    "metadata: !!python/name:os.system\n",
    "a: &x [1]\nb: *x\n",
    "include: /etc/other.yaml\n",
    "include: ../other.yaml\n",
    "dataset_kwargs:\n  trust_remote_code: true\n",
    'gen_prefix: "{{ cycler.__init__.__globals__ }}"\n',
    "dataset_path: /etc\n",
    "task: [\n",
    f"dataset_kwargs:\n  data_files:\n    test: {PAYLOAD}/d.jsonl\n",
    "class: !function x.Task\n",
    # issue #32's classes: a metric name that reached evaluate.load, URLs and globs that read server files or
    # another visitor's uploads, writes outside, unbounded generation, code by other keys
    "metric_list:\n  - metric: ./x.py\n",
    "metric_list:\n  - metric: someone/metric\n",
    "dataset_kwargs:\n  data_files:\n    test: file:///etc/passwd\n",
    "dataset_kwargs:\n  data_files:\n    test: ../../*/uploads/*.csv\n",
    "dataset_kwargs:\n  data_files:\n    test: zip://x::d.jsonl\n",
    "dataset_kwargs:\n  cache_dir: /tmp/elsewhere\n",
    "generation_kwargs:\n  max_gen_toks: 100000000\n",
    "repeats: 100000\n",
    "process_docs: x.fn\n",
    "custom_dataset: x.fn\n",
    "filter_list:\n  - name: f\n    filter:\n      - function: custom\n",
    "dataset_path: someone/script\n",
]
TASK = 'task: t{n}\ndataset_path: json\ntest_split: test\noutput_type: loglikelihood\ndoc_to_text: "{{{{q}}}}"\n'


def task_files(rng: random.Random):
    from ui.tabs.harness_panel import take_task_files

    path = Path(tempfile.mkdtemp(dir=SCRATCH)) / "t.yaml"
    path.write_text(TASK.format(n=rng.randrange(100)) + "".join(rng.sample(ATTACKS, rng.randint(1, 3))))
    return lambda state: take_task_files(
        [str(path), str(PAYLOAD / "x.py"), str(PAYLOAD / "d.jsonl")][: rng.randint(1, 3)], state
    )


def long_texts(rng: random.Random):
    from cnl_core.evaluate.harness import parse_tasks
    from cnl_core.inspect.neuron import parse_neuron
    from cnl_core.model.loading import ModelSpec, memory_plan
    from ui.tabs.studies_tab import _fractions

    field, call = rng.choice(
        [
            (F.MODEL_NAME, lambda t: memory_plan(ModelSpec(t))),
            (F.NEURON, parse_neuron),
            (F.TASK_NAMES, parse_tasks),
            (F.FRACTIONS, _fractions),
        ]
    )
    text = rng.choice("ab1:, /.") * rng.randint(field.max_chars + 1, 5 * field.max_chars)
    return lambda state: call(text)


def upload_route(rng: random.Random):
    from ui.upload_guard import DataOnlyUploads

    name = rng.choice(["x.py", "x.pyc", "x.so", "run.sh", "x", "model.bin", "x.csv.py", ".bashrc", "x.PY"])
    upload_dir = SCRATCH / "gradio"

    async def gradio(scope, receive, send):  # stands in for Gradio's route: stores the file, answers its path
        stored = upload_dir / "h" / name
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes((PAYLOAD / "x.py").read_bytes())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": json.dumps([str(stored)]).encode()})

    def call(state):
        sent = []

        async def send(message):
            sent.append(message)

        asyncio.run(
            DataOnlyUploads(gradio, upload_dir)(
                {"type": "http", "method": "POST", "path": "/gradio_api/upload"}, None, send
            )
        )
        if sent[0]["status"] != 400 or (upload_dir / "h" / name).exists():
            return "accepted"
        raise CNLError("refused")

    return call


LOOPS = [
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "{{ 'x' * 10**9 }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{% set a = [1] %}{% for i in range(10000) %}{% set a = a + a %}{% endfor %}{{ a }}",
    "{{ q * 99999999 }}",
    "{{ range(10**9) | list }}",
    "{{ lipsum(10**7) }}",
    "{{ (q ~ q) * 10**8 }}",
    "{{ q }}",
]


def task_runs(rng: random.Random):
    """Accepted task files whose templates loop, build huge strings or reach for Python: run in the child."""
    from cnl_core.evaluate.harness import HarnessSettings
    from cnl_core.evaluate.harness_sandbox import IsolatedHarness, SandboxLimits
    from cnl_core.model.loading import load_model

    folder = Path(tempfile.mkdtemp(dir=SCRATCH))
    (folder / "d.jsonl").write_text('{"q": "1+1=", "a": " 2"}\n' * 2)
    template = rng.choice(LOOPS).replace('"', "'")
    (folder / "t.yaml").write_text(
        "task: t\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: d.jsonl\n"
        f'test_split: test\noutput_type: loglikelihood\ndoc_to_text: "{template}"\n'
        'doc_to_target: "{{a}}"\n'
    )

    def call(state):
        with IsolatedHarness(
            load_model("smollm2-135m"),
            HarnessSettings(tasks="t", include_path=str(folder)),
            SandboxLimits(cpu_s=3, wall_s=60),
        ) as harness:
            return harness.evaluate(None)

    return call


KINDS = {
    "server paths named in shared mode (model box, dataset file, task folder)": server_paths,
    "model configs of an allowed folder (bad shapes, binary files, auto_map code)": model_configs,
    "task YAMLs uploaded (tags, aliases, includes, data paths, templates, code files)": task_files,
    "typed text past its length (model, neuron, tasks, fractions)": long_texts,
    "files posted to the upload route (code, binaries, no extension)": upload_route,
    "task files run in the child (loops, huge strings, sandbox escapes; 3 CPU seconds)": task_runs,
}
PER_KIND = {task_runs: 20}  # each starts a process: fewer tries


def count(kind, rng: random.Random, n: int) -> Counter:
    out = Counter()
    for _ in range(n):
        state = new_session()
        before, files = _snapshot(state), _files()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = kind(rng)(state)
            out["accepted"] += 1
            _ = result
        except (CNLError, gr.Error) as exc:
            crash = isinstance(exc, gr.Error) and not isinstance(exc.__cause__, CNLError)
            out["crash" if crash else "refused"] += 1
            out["data lost"] += _snapshot(state) != before
        except Exception:  # noqa: BLE001  # counted, never hidden
            out["crash"] += 1
        out["wrote outside"] += bool(_files() - files)
        out["code run"] += MARKER.exists()
        MARKER.unlink(missing_ok=True)
        state.end()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-kind", type=int, default=100)
    args = parser.parse_args()
    _setup()
    print("| input | tried | accepted | refused with a sentence | crash | data lost | wrote outside | code run |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, kind in KINDS.items():
        n = min(args.per_kind, PER_KIND.get(kind, args.per_kind))
        c = count(kind, random.Random(f"{args.seed}:{name}"), n)
        print(
            f"| {name} | {n} | {c['accepted']} | {c['refused']} | {c['crash']} | {c['data lost']} | "
            f"{c['wrote outside']} | {c['code run']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
