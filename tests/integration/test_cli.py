"""The CLI as a user runs it: real subprocesses, a real kill, files on disk."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.many_commands import run_many

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, cache, timeout=600):
    env = {**os.environ, "CNL_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "cnl_core", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )


def cli_many(*commands, cache, timeout=900) -> list[subprocess.CompletedProcess]:
    """Several commands one after another, each through the CLI's entry point, in one process (many_commands.py)."""
    return run_many(list(commands), cache, timeout=timeout)


@pytest.fixture(scope="module")
def cli_cache(tmp_path_factory):
    """A score cache for the CLI tests; the converted model is shared through a link."""
    from cnl_core.paths import cache_root

    folder = tmp_path_factory.mktemp("cli-cache")
    (folder / "models").symlink_to(cache_root() / "models")
    return folder


def test_locate_compare_evaluate_round_trip(tmp_path, cli_cache):
    out1, out2 = tmp_path / "a.json", tmp_path / "b.json"
    locate = ("locate", "--dataset", "arithmetic", "--n", 3, "--splits", 2, "--seed", 1, "--tau", 0.1, "--p", 0.5)
    # locate; the same command again: every sample from the cache, same neurons; then compare and evaluate
    r, r2, cmp, ev = cli_many(
        [*locate, "--out", out1],
        [*locate, "--out", out2],
        ["compare", out1, out2, "--out", tmp_path / "c.json"],
        [
            "evaluate",
            "--dataset",
            "arithmetic",
            "--n",
            2,
            "--neurons",
            out1,
            "--control-draws",
            1,
            "--fewshot",
            0,
            "--max-new-tokens",
            6,
            "--bootstrap",
            50,
            "--out",
            tmp_path / "e.json",
        ],
        cache=cli_cache,
    )
    assert r.returncode == 0, r.stderr
    assert "overlap" in r.stdout and "IoU" in r.stdout
    res = json.loads(out1.read_text())
    for key in ("model", "dataset", "method", "params", "n_neurons_total", "neurons", "splits", "pairwise", "versions"):
        assert key in res
    assert res["n_neurons_total"] == 46080 and len(res["splits"]) == 2
    assert {"overlap_rate", "iou", "chance_iou", "p_value"} <= set(res["pairwise"][0])
    assert r2.returncode == 0 and "0 computed" in r2.stdout
    again = json.loads(out2.read_text())
    assert again["cache"]["computed"] == 0 and again["neurons"] == res["neurons"]
    assert cmp.returncode == 0 and "IoU" in cmp.stdout
    assert json.loads((tmp_path / "c.json").read_text())["iou"][0][1] == 1.0
    assert ev.returncode == 0, ev.stderr
    e = json.loads((tmp_path / "e.json").read_text())
    assert {"baseline", "intervened", "control", "n", "sample_ids"} <= set(e)
    located = {i for s in res["splits"] for i in s["sample_ids"]}
    assert not located & set(e["sample_ids"])


def test_killed_run_resumes_from_written_shards(tmp_path, cli_cache):
    env = {**os.environ, "CNL_CACHE_DIR": str(cli_cache), "PYTHONPATH": str(ROOT)}
    args = [
        sys.executable,
        "-m",
        "cnl_core",
        "locate",
        "--dataset",
        "gsm8k",
        "--n",
        4,
        "--splits",
        1,
        "--seed",
        5,
        "--batch-size",
        1,
    ]
    before = set((cli_cache / "scores").glob("*/shard-*.safetensors"))
    proc = subprocess.Popen(
        list(map(str, args)), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    shards = []
    while time.time() < deadline and len(shards) < 2:
        shards = list(set((cli_cache / "scores").glob("*/shard-*.safetensors")) - before)
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(shards) >= 2, "no shard was written before the deadline"
    r = cli(
        "locate",
        "--dataset",
        "gsm8k",
        "--n",
        4,
        "--splits",
        1,
        "--seed",
        5,
        "--batch-size",
        4,
        "--out",
        tmp_path / "r.json",
        cache=cli_cache,
    )
    assert r.returncode == 0, r.stderr
    cache = json.loads((tmp_path / "r.json").read_text())["cache"]
    assert (
        cache["reused"] >= 2 and cache["computed"] >= 1 and cache["reused"] + cache["computed"] == 4
    )  # killed mid-run
    assert not any("corrupt" in n for n in cache["notes"])


def test_run_from_config_file(tmp_path, cli_cache):
    out = tmp_path / "loc.json"
    config = {
        "model": {"model": "smollm2-135m"},
        "steps": [
            {"command": "locate", "dataset": "arithmetic", "n": 2, "splits": 1, "seed": 9, "out": str(out)},
            {"command": "compare", "files": [str(out), str(out)]},
        ],
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(config))
    r = cli("run", path, cache=cli_cache)
    assert r.returncode == 0, r.stderr
    assert out.exists() and "step 2" in r.stdout


BAD_INPUTS = [
    (["locate", "--tau", "3"], "argument --tau: 3 is out of range"),
    (["locate", "--dataset", "nope"], "Unknown dataset"),
    (["locate", "--model", "../../no-such-model"], "neither an existing folder"),
    (["compare", "/nonexistent.json", "/nonexistent2.json"], "Could not read"),
    # the dataset and the numbers are checked before the model: this model does not exist either
    (["locate", "--model", "/no/such/model", "--dataset", "nope"], "Unknown dataset"),
    (["locate", "--model", "/no/such/model", "--n", "0"], "argument --n: 0 is out of range"),
    (["locate", "--model", "/no/such/model", "--dataset", "/no/such/file.csv"], "No dataset file"),
    (["evaluate", "--model", "/no/such/model", "--neurons", "/nonexistent.json"], "Could not read"),
    (["evaluate", "--model", "/no/such/model", "--max-new-tokens", "1e4"], "argument --max-new-tokens: 10,000 is out"),
]


def test_bad_input_is_a_one_line_error(tmp_path, cli_cache):
    bad = tmp_path / "bad.json"  # neurons the model does not have
    bad.write_text(json.dumps({"grid": {"n_layers": 30, "width": 1536}, "neurons": [[31, 0]]}))
    cases = [
        *BAD_INPUTS,
        (["evaluate", "--dataset", "arithmetic", "--n", "1", "--neurons", str(bad)], "Layer 31 does not exist"),
    ]
    for (args, message), r in zip(cases, cli_many(*(a for a, _ in cases), cache=cli_cache)):
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_own_csv_works_as_a_dataset_and_export_writes_the_dashboard_files(tmp_path, cli_cache):
    rows = (
        ["Ticket Text,Route To"]
        + [f'"My invoice {i} is wrong, please fix it",billing' for i in range(6)]
        + [f'"The app crashes on screen {i}",tech' for i in range(6)]
    )
    data = tmp_path / "tickets.csv"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "t.json"
    r, bad, ex = cli_many(
        [
            "locate",
            "--dataset",
            data,
            "--prompt-column",
            "Ticket Text",
            "--answer-column",
            "Route To",
            "--labels",
            "billing,tech",
            "--n",
            2,
            "--splits",
            2,
            "--out",
            out,
        ],
        ["locate", "--dataset", data, "--prompt-column", "Text", "--answer-column", "Route To"],
        ["export", out, "--out-dir", tmp_path / "exp"],
        cache=cli_cache,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["dataset"].startswith("tickets-") and all(
        i.startswith(res["dataset"] + "/") for s in res["splits"] for i in s["sample_ids"]
    )
    assert bad.returncode == 2 and "Column 'Text' is not in the file" in bad.stderr
    assert ex.returncode == 0, ex.stderr
    stem = f"smollm2-135m_{res['dataset']}_t"
    names = {p.name for p in (tmp_path / "exp").iterdir()}
    assert {
        f"located_{stem}.json",
        f"splits_{stem}.csv",
        f"top_neurons_{stem}.csv",
        f"heatmap_{stem}.png",
        f"heatmap_{stem}.svg",
    } <= names
    assert json.loads((tmp_path / "exp" / f"located_{stem}.json").read_text())["neurons"] == res["neurons"]


def test_inspect_and_steer_from_the_command_line(tmp_path, cli_cache):
    out = tmp_path / "n.json"
    neurons = tmp_path / "set.json"
    neurons.write_text(json.dumps({"grid": {"n_layers": 30, "width": 1536}, "neurons": [[12, i] for i in range(40)]}))
    r, bad, typo, s = cli_many(
        ["inspect", "--neuron", "12:100", "--dataset", "add1", "--dataset", "imdb", "--n", 2, "--out", out],
        ["inspect", "--neuron", "40:1", "--dataset", "add1"],
        ["inspect", "--neuron", "12/100", "--model", "/no/such/model"],
        [
            "steer",
            "--prompt",
            "Question: What is 2 + 2?\nAnswer:",
            "--neurons",
            neurons,
            "--max-new-tokens",
            3,
            "--positions",
            "answer",
            "--out",
            tmp_path / "s.json",
        ],
        cache=cli_cache,
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert (data["layer"], data["index"]) == (12, 100) and set(data["stats"]) == {"add1", "imdb"}
    assert len(data["vocab_top"]) >= 10 and data["top_examples"][0]["tokens"]
    assert bad.returncode == 2 and "Neuron 40:1 does not exist" in bad.stderr
    assert typo.returncode == 2 and "LAYER:INDEX" in typo.stderr  # refused before any model loads
    assert s.returncode == 0, s.stderr
    steered = json.loads((tmp_path / "s.json").read_text())
    assert {"baseline", "intervened", "control"} <= set(steered) and len(steered["baseline"]["logprobs"]) == 3
    assert steered["intervention"]["positions"] == "answer"  # the flag reaches the intervention (issue #28)


def test_a_full_disk_keeps_the_earlier_out_file_and_says_so(tmp_path):
    """Issue #25: --out on a full disk replaced a good earlier result with truncated JSON, with a traceback."""
    import resource

    from cnl_core.serialize import to_data
    from tests.unit.test_results import result

    files = [tmp_path / f"set{i}.json" for i in range(30)]
    for f in files:
        f.write_text(json.dumps(to_data(result())))
    out = tmp_path / "cmp.json"
    earlier = json.dumps({"kind": "cnl.compare", "earlier": "x" * 9000})
    out.write_text(earlier)

    def full_disk():  # writes past 4 KiB fail with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "cnl_core", "compare", *map(str, files), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        preexec_fn=full_disk,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"error: Could not write {out}" in r.stderr and "earlier file there is unchanged" in r.stderr
    assert out.read_text() == earlier and {p.name for p in tmp_path.iterdir()} == {"cmp.json", *(f.name for f in files)}
