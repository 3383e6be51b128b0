"""Reliability and security: concurrency, faults, reproducibility, no unsafe loading."""

import re
import threading
from pathlib import Path

import pytest
import torch

from cnl_core.data.samples import get_dataset
from cnl_core.errors import Cancelled
from cnl_core.evaluate.accuracy import EvalConfig
from cnl_core.experiments.evaluate import run_evaluate
from cnl_core.experiments.locate import run_locate
from cnl_core.locate import collect as collect_mod
from cnl_core.locate.collect import collect_scores
from cnl_core.locate.scorers import ScoreConfig
from cnl_core.model.hooks import Intervention
from cnl_core.model.neurons import NeuronSet
from cnl_core.serialize import to_data

ROOT = Path(__file__).resolve().parents[2]
CFG = EvalConfig(num_fewshot=0, max_new_tokens=6, batch_size=2, bootstrap=100)


def _neurons(lm, start):
    return NeuronSet.from_pairs(lm.grid, [[layer, start + i] for layer in (3, 12, 25) for i in range(30)])


def test_four_sessions_at_once_match_their_solo_results(lm, score_cache):
    """Two locating, two evaluating with different interventions: each gets what it gets alone."""
    jobs = {
        "locate_a": lambda: run_locate(lm, "arithmetic", 2, 2, seed=1, use_cache=False).result().neurons.pairs(),
        "locate_b": lambda: run_locate(lm, "asdiv", 2, 2, seed=2, use_cache=False).result().neurons.pairs(),
        "zero": lambda: run_evaluate(
            lm, "arithmetic", 2, 0, Intervention(_neurons(lm, 0), "zero"), control_draws=1, cfg=CFG
        ),
        "amplify": lambda: run_evaluate(
            lm, "arithmetic", 2, 0, Intervention(_neurons(lm, 100), "amplify", 3.0), control_draws=1, cfg=CFG
        ),
    }
    strip = lambda r: r if isinstance(r, list) else {k: to_data(v) for k, v in r.conditions().items()}  # noqa: E731
    alone = {name: strip(job()) for name, job in jobs.items()}
    together, errors = {}, []

    def work(name):
        try:
            together[name] = strip(jobs[name]())
        except Exception as exc:  # pragma: no cover - reported by the assert
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert together == alone
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)


def test_out_of_memory_retries_with_a_smaller_batch(lm, score_cache, monkeypatch):
    real = collect_mod.score_batch
    calls = []

    def flaky(lm_, chunk, cfg):
        calls.append(len(chunk))
        if len(chunk) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(lm_, chunk, cfg)

    monkeypatch.setattr(collect_mod, "score_batch", flaky)
    ds = get_dataset("arithmetic")
    table = collect_scores(lm, ds, [s.id for s in ds.rows()[:4]], ScoreConfig(), batch_size=4)
    assert table.computed == 4 and calls[0] == 4 and max(calls[1:]) <= 2
    assert any("Out of memory" in n for n in table.notes)
    calls.clear()  # a batch shorter than the batch size is halved from its own length, not from the size
    collect_scores(lm, ds, [s.id for s in ds.rows()[4:7]], ScoreConfig(), batch_size=16, use_cache=False)
    assert calls == [3, 1, 1, 1]


def test_cancel_keeps_finished_batches_cached(lm, score_cache):
    ds = get_dataset("arithmetic")
    ids = [s.id for s in ds.rows()[:4]]
    cancel = threading.Event()

    def progress(done, total, msg):
        if done >= 2:
            cancel.set()

    with pytest.raises(Cancelled):
        collect_scores(lm, ds, ids, ScoreConfig(), batch_size=2, progress=progress, cancel=cancel)
    again = collect_scores(lm, ds, ids, ScoreConfig(), batch_size=2)
    assert (again.reused, again.computed) == (2, 2)


def test_same_seed_same_neurons_and_numbers_fresh_and_warm(lm, tmp_path, monkeypatch):
    results = []
    for folder in ("one", "two", "two"):  # fresh, fresh, warm
        monkeypatch.setenv("CNL_CACHE_DIR", str(tmp_path / folder))
        r = to_data(run_locate(lm, "arithmetic", 3, 2, seed=4).result())
        results.append((r["neurons"], r["pairwise"], [s["sample_ids"] for s in r["splits"]]))
    assert results[0] == results[1] == results[2]
    ev = [
        to_data(run_evaluate(lm, "arithmetic", 2, 5, Intervention(_neurons(lm, 0)), control_draws=1, cfg=CFG))
        for _ in range(2)
    ]
    assert ev[0]["intervened"] == ev[1]["intervened"] and ev[0]["control"] == ev[1]["control"]
    assert ev[0]["versions"]["torch"] and ev[0]["eval_config"]["max_new_tokens"] == 6


def test_no_pickle_or_torch_load_anywhere_in_the_code():
    sources = [*(ROOT / "cnl_core").rglob("*.py"), *(ROOT / "ui").rglob("*.py"), ROOT / "dashboard.py"]
    assert len(sources) > 30
    for path in sources:
        text = path.read_text()
        assert not re.search(r"\bpickle\b|torch\.load\(|joblib|dill", text), path.name


def test_trust_remote_code_is_off_by_default_and_the_app_binds_to_loopback(lm, monkeypatch):
    import sys

    assert lm.spec.trust_remote_code is False
    import dashboard

    seen = {}
    monkeypatch.setattr(dashboard, "build_app", lambda: type("A", (), {"launch": lambda self, **kw: seen.update(kw)})())
    monkeypatch.setattr(sys, "argv", ["dashboard.py"])
    monkeypatch.delenv("SPACE_ID", raising=False)
    dashboard.main()
    assert seen["server_name"] == "127.0.0.1" and not seen["share"]


def test_intervention_on_a_foreign_grid_is_refused(lm):
    from cnl_core.errors import ParameterError
    from cnl_core.model.hooks import intervene
    from cnl_core.model.neurons import NeuronGrid

    with pytest.raises(ParameterError):
        with intervene(lm, Intervention(NeuronSet.from_flat(NeuronGrid(2, 8), [1]))):
            pass
    assert all(len(m._forward_pre_hooks) == 0 for m in lm.ffn.down)


def test_full_disk_goes_on_without_caching(lm, score_cache, monkeypatch):
    import errno

    from cnl_core.locate import score_store as cache_mod

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_mod, "save_file", no_space)
    ds = get_dataset("arithmetic")
    table = collect_scores(lm, ds, [s.id for s in ds.rows()[:3]], ScoreConfig(), batch_size=1)
    assert table.computed == 3 and table.scores.shape[0] == 3
    assert sum("No space left on device" in n for n in table.notes) == 1  # said once, then no more writes
    assert not list((score_cache / "scores").glob("*/.*.part"))  # no half-written file left behind


def test_dashboard_writes_only_under_the_cache_folder():
    import dashboard

    assert Path(dashboard.os.environ["GRADIO_TEMP_DIR"]).is_relative_to(dashboard.cache_root())


def test_a_cache_made_unwritable_mid_run_goes_on_without_caching(lm, score_cache, monkeypatch):
    """Issue #25: safetensors' own error (a SafetensorError, not an OSError) crashed the run mid-way."""
    import shutil

    real, calls = collect_mod.score_batch, []

    def then_the_cache_breaks(lm_, chunk, cfg):
        calls.append(len(chunk))
        if len(calls) == 2:  # the first shard is written; now the cache folder becomes a file
            (folder,) = (score_cache / "scores").iterdir()
            shutil.rmtree(folder)
            folder.write_text("not a folder any more")
        return real(lm_, chunk, cfg)

    monkeypatch.setattr(collect_mod, "score_batch", then_the_cache_breaks)
    ds = get_dataset("arithmetic")
    table = collect_scores(lm, ds, [s.id for s in ds.rows()[:3]], ScoreConfig(), batch_size=1)
    assert table.computed == 3 and table.scores.shape[0] == 3 and calls == [1, 1, 1]
    notes = [n for n in table.notes if "going on without caching" in n]
    assert len(notes) == 1 and "\n" not in notes[0]
