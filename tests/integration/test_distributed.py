"""Scoring and evaluation spread over two CPU processes by torchrun, against one process on the real model.

Every command runs once, in a module fixture: the one-process runs in one process (each locate with a score cache
of its own, so it computes afresh) and the two-process runs one after another in one torchrun launch over one
cache, so the later runs read what the earlier ones wrote (tests/many_commands.py: Python, torch, the model and the
process group start once per process, not once per command)."""

import json

import pytest

from cnl_core.parallel import Launch, launched, spread
from tests.many_commands import run_many

LOCATE = ["locate", "--dataset", "add1", "--n", 4, "--splits", 2, "--seed", 3, "--batch-size", 2]
MORE = [*LOCATE[:4], 6, *LOCATE[5:]]  # a larger run over the cache of the smaller one (a killed run leaves the same)
ALONE = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}  # as torchrun would set, with no partner


def _cache(tmp_path, name):
    from cnl_core.paths import cache_root

    folder = tmp_path / name
    folder.mkdir()
    (folder / "models").symlink_to(cache_root() / "models")
    return folder


def _evaluate(tmp, out):
    return [
        *("evaluate", "--dataset", "add1", "--n", 6, "--neurons", tmp / "one.json", "--control-draws", 1),
        *("--fewshot", 0, "--batch-size", 2, "--bootstrap", 50, "--out", tmp / out),
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The result files and each command's output: (folder, one process's outputs, the two processes' outputs,
    the shared cache of the two-process runs)."""
    tmp = tmp_path_factory.mktemp("dist")
    one, fresh, two = (_cache(tmp, name) for name in ("one", "fresh", "two"))
    single = run_many(
        [
            {"argv": [*LOCATE, "--out", tmp / "one.json"], "env": {"CNL_CACHE_DIR": one}},
            {"argv": [*MORE, "--out", tmp / "more1.json"], "env": {"CNL_CACHE_DIR": fresh}},
            _evaluate(tmp, "e1.json"),
            # what cannot be shared is refused before any process waits for a partner
            {"argv": [*LOCATE, "--no-cache"], "env": ALONE},
            {"argv": ["decouple", "--dataset", "add1", "--other", "add2", "--n", 2], "env": ALONE},
        ],
        one,
    )
    pair = run_many(
        [
            [*LOCATE, "--out", tmp / "two.json"],
            [*LOCATE, "--out", tmp / "again.json"],  # resumes from the cache
            [*MORE, "--out", tmp / "more2.json"],  # computes only what the cache lacks
            _evaluate(tmp, "e2.json"),
        ],
        two,
        processes=2,
    )
    for r in single[:3] + pair[0] + pair[1]:
        assert r.returncode == 0, r.stderr[-2000:]
    return tmp, single, pair, two


def _read(tmp, name):
    return json.loads((tmp / name).read_text())


def test_two_processes_locate_the_same_neurons_as_one(runs):
    tmp, _, pair, cache = runs
    one, two = _read(tmp, "one.json"), _read(tmp, "two.json")
    assert two["neurons"] == one["neurons"] and two["pairwise"] == one["pairwise"]
    assert [s["neurons"] for s in two["splits"]] == [s["neurons"] for s in one["splits"]]
    assert two["cache"]["computed"] == 8 and two["cache"]["reused"] == 0
    main, other = pair[0][0], pair[1][0]
    assert main.stdout.count(" samples from cache, ") == 1 and other.stdout == ""  # only the main process prints
    assert "this process's share of 8" in main.stderr
    shards = list((cache / "scores").glob("*/shard-*.safetensors"))
    assert len(shards) == 4 + 2  # 8 samples in batches of 2, then the larger run's 4 new ones: both processes'


def test_two_processes_resume_from_the_cache(runs):
    tmp, _, _, _ = runs
    res = _read(tmp, "again.json")
    assert res["cache"]["computed"] == 0 and res["cache"]["reused"] == 8
    assert res["neurons"] == _read(tmp, "one.json")["neurons"]


def test_two_processes_compute_only_what_the_cache_lacks(runs):
    """The 8 scored samples are read, the 4 new ones split between the processes, and the result is still the
    one-process result."""
    tmp, _, _, _ = runs
    two, one = _read(tmp, "more2.json"), _read(tmp, "more1.json")
    assert two["cache"]["reused"] == 8 and two["cache"]["computed"] == 4
    assert two["neurons"] == one["neurons"] and two["pairwise"] == one["pairwise"]


def test_two_processes_evaluate_as_one(runs):
    tmp, _, _, _ = runs
    e1, e2 = _read(tmp, "e1.json"), _read(tmp, "e2.json")
    assert e2["sample_ids"] == e1["sample_ids"] and len(e2["sample_ids"]) == 6
    for key in ("baseline", "intervened", "control", "examples"):
        assert e2[key] == e1[key], key


def test_what_cannot_be_shared_is_refused_before_any_process_waits(runs):
    _, single, _, _ = runs
    no_cache, decouple = single[3:]
    assert no_cache.returncode == 2 and "--no-cache cannot be used under torchrun" in no_cache.stderr
    assert decouple.returncode == 2 and "runs as one process" in decouple.stderr


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
