"""A slow model load (a big download, a Hub look-up) never holds up visitors whose model is loaded."""

import threading

import pytest

from cnl_core.model import model_cache
from cnl_core.model.loading import ModelSpec


def test_a_slow_load_does_not_block_a_loaded_model_and_one_load_serves_two_visitors(monkeypatch):
    release, started, loads = threading.Event(), threading.Event(), []

    def fake_load(spec, work=None):
        loads.append(spec.name)
        if spec.name == "slow":
            started.set()
            assert release.wait(10)
        return f"model {spec.name}"

    monkeypatch.setattr(model_cache, "load_model", fake_load)
    cache = model_cache.ModelCache(capacity=3)
    assert cache.get("fast") == "model fast"
    results = []
    visitors = [threading.Thread(target=lambda: results.append(cache.get(ModelSpec("slow")))) for _ in range(2)]
    for v in visitors:
        v.start()
    assert started.wait(10)
    assert cache.get("fast") == "model fast"  # answered while "slow" is still loading
    release.set()
    for v in visitors:
        v.join(10)
    assert results == ["model slow", "model slow"] and loads == ["fast", "slow"]


def test_after_a_failed_load_the_next_visitor_loads_once_and_no_lock_is_left(monkeypatch):
    calls = []

    def flaky_load(spec, work=None):
        calls.append(spec.name)
        if len(calls) == 1:
            raise OSError("disk full")
        return f"model {spec.name}"

    monkeypatch.setattr(model_cache, "load_model", flaky_load)
    cache = model_cache.ModelCache()
    with pytest.raises(OSError):
        cache.get("m")
    assert cache.get("m") == "model m" and cache.get("m") == "model m"
    assert calls == ["m", "m"] and cache._loading == {} and cache.loaded() == [ModelSpec("m")]
