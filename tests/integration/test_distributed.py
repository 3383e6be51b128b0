"""Scoring and evaluation spread over two CPU processes by torchrun, against one process on the real model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnl_core.parallel import Launch, launched, spread

ROOT = Path(__file__).resolve().parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")
LOCATE = ["locate", "--dataset", "add1", "--n", 4, "--splits", 2, "--seed", 3, "--batch-size", 2]


def _cache(tmp_path, name):
    from cnl_core.paths import cache_root

    folder = tmp_path / name
    folder.mkdir()
    (folder / "models").symlink_to(cache_root() / "models")
    return folder


def _run(args, cache, processes=1, env=None):
    """`python -m cnl_core ...`, or the same under `torchrun --nproc_per_node processes`. One thread per
    process either way: the same matrix kernels, so the same bits (threads change the last float bit)."""
    outer = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env = {**outer, "CNL_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    head = (
        [sys.executable, "-m", "cnl_core"]
        if processes == 1
        else [str(TORCHRUN), "--standalone", "--nproc_per_node", str(processes), "-m", "cnl_core", "--"]
    )
    return subprocess.run(head + [str(a) for a in args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def located(tmp_path_factory):
    """The same locate run in one process and in two; their result files."""
    tmp = tmp_path_factory.mktemp("dist")
    one, two = _cache(tmp, "one"), _cache(tmp, "two")
    r1 = _run([*LOCATE, "--out", tmp / "one.json"], one)
    assert r1.returncode == 0, r1.stderr
    r2 = _run([*LOCATE, "--out", tmp / "two.json"], two, processes=2)
    assert r2.returncode == 0, r2.stderr
    return tmp, two, r2, json.loads((tmp / "one.json").read_text()), json.loads((tmp / "two.json").read_text())


def test_two_processes_locate_the_same_neurons_as_one(located):
    tmp, cache, run, one, two = located
    assert two["neurons"] == one["neurons"] and two["pairwise"] == one["pairwise"]
    assert [s["neurons"] for s in two["splits"]] == [s["neurons"] for s in one["splits"]]
    assert two["cache"]["computed"] == 8 and two["cache"]["reused"] == 0
    assert run.stdout.count(" samples from cache, ") == 1  # only the main process prints
    assert "this process's share of 8" in run.stderr
    shards = list((cache / "scores").glob("*/shard-*.safetensors"))
    assert len(shards) == 4  # 8 samples in batches of 2, written by both processes


def test_two_processes_resume_from_the_cache(located):
    tmp, cache, _, one, _ = located
    again = _run([*LOCATE, "--out", tmp / "again.json"], cache, processes=2)
    assert again.returncode == 0, again.stderr
    res = json.loads((tmp / "again.json").read_text())
    assert res["cache"]["computed"] == 0 and res["cache"]["reused"] == 8 and res["neurons"] == one["neurons"]


def test_two_processes_compute_only_what_the_cache_lacks(located):
    """A larger run over the cache of a smaller one (a killed run leaves the same): the 8 scored samples are
    read, the 4 new ones split between the processes, and the result is still the one-process result."""
    tmp, cache, _, _, _ = located
    more = [*LOCATE[:4], 6, *LOCATE[5:]]
    r2 = _run([*more, "--out", tmp / "more2.json"], cache, processes=2)
    r1 = _run([*more, "--out", tmp / "more1.json"], _cache(tmp, "fresh"))
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    two, one = (json.loads((tmp / f).read_text()) for f in ("more2.json", "more1.json"))
    assert two["cache"]["reused"] == 8 and two["cache"]["computed"] == 4
    assert two["neurons"] == one["neurons"] and two["pairwise"] == one["pairwise"]


def test_two_processes_evaluate_as_one(located):
    tmp, cache, _, _, _ = located
    args = [
        "evaluate",
        "--dataset",
        "add1",
        "--n",
        6,
        "--neurons",
        tmp / "one.json",
        "--control-draws",
        1,
        "--fewshot",
        0,
        "--batch-size",
        2,
        "--bootstrap",
        50,
    ]
    r1 = _run([*args, "--out", tmp / "e1.json"], cache)
    r2 = _run([*args, "--out", tmp / "e2.json"], cache, processes=2)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    e1, e2 = (json.loads((tmp / f).read_text()) for f in ("e1.json", "e2.json"))
    assert e2["sample_ids"] == e1["sample_ids"] and len(e2["sample_ids"]) == 6
    for key in ("baseline", "intervened", "control", "examples"):
        assert e2[key] == e1[key], key


def test_what_cannot_be_shared_is_refused_before_any_process_waits(tmp_path):
    cache = _cache(tmp_path, "c")
    alone = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}  # as torchrun would set, with no partner
    r = _run([*LOCATE, "--no-cache"], cache, env=alone)
    assert r.returncode == 2 and "--no-cache cannot be used under torchrun" in r.stderr
    r = _run(["decouple", "--dataset", "add1", "--other", "add2", "--n", 2], cache, env=alone)
    assert r.returncode == 2 and "runs as one process" in r.stderr


@pytest.mark.parametrize("n_items,batch,world", [(0, 2, 2), (1, 2, 2), (7, 2, 2), (8, 2, 3), (10, 4, 2), (5, 1, 4)])
def test_every_item_is_dealt_to_exactly_one_process_in_whole_batches(n_items, batch, world):
    items = list(range(n_items))
    shares = [Launch(r, world, r).share(items, batch) for r in range(world)]
    assert sorted(x for s in shares for x in s) == items
    batches = [items[i : i + batch] for i in range(0, n_items, batch)]
    dealt = [b for share in shares for b in (share[i : i + batch] for i in range(0, len(share), batch))]
    assert sorted(dealt) == sorted(batches)  # whole batches, as one process would run them
    counts = [sum(len(b) for b in (share[i : i + batch] for i in range(0, len(share), batch))) for share in shares]
    assert max(counts) - min(counts) <= batch


def test_batches_are_dealt_back_and_forth():
    owner = {b: r for r in range(2) for b in Launch(r, 2, 0).share(list(range(8)), 1)}
    assert [owner[b] for b in range(8)] == [0, 1, 1, 0, 0, 1, 1, 0]
    owner = {b: r for r in range(3) for b in Launch(r, 3, 0).share(list(range(7)), 1)}
    assert [owner[b] for b in range(7)] == [0, 1, 2, 2, 1, 0, 0]


def test_one_process_is_left_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert launched() is None
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert launched() is None
    monkeypatch.setenv("WORLD_SIZE", "4"), monkeypatch.setenv("RANK", "2"), monkeypatch.setenv("LOCAL_RANK", "0")
    assert launched() == Launch(2, 4, 0) and not launched().is_main
    assert spread(None, [3, 1, 2], 2, lambda part: [x * 10 for x in part]) == [30, 10, 20]
