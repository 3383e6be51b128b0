"""A slow model load (a big download, a Hub look-up) never holds up visitors whose model is loaded."""

import threading

from cnl_core.model import model_cache
from cnl_core.model.loading import ModelSpec


def test_a_slow_load_does_not_block_a_loaded_model_and_one_load_serves_two_visitors(monkeypatch):
    release, started, loads = threading.Event(), threading.Event(), []

    def fake_load(spec):
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
