"""Hub items without a Hub: marked unavailable at once (one quick connection), never an error 20 s later."""

import socket
from pathlib import Path

import pytest

from cnl_core import hub_status as hs
from cnl_core.data.samples import get_dataset
from cnl_core.errors import DatasetError, ModelLoadError
from cnl_core.model.loading import ModelSpec, load_model
from ui.tabs.data_tab import dataset_table


@pytest.fixture()
def endpoint(monkeypatch, tmp_path):
    """Point the Hub at a local port: closed (out of reach) or listening (reachable); empty dataset caches."""
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(hs, "_cached", None)

    def point(listening: bool) -> socket.socket:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        if listening:
            sock.listen()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{sock.getsockname()[1]}")
        monkeypatch.setattr(hs, "_cached", None)
        return sock

    return point


def test_out_of_reach_hub_marks_hub_datasets_unavailable_and_says_why(endpoint):
    sock = endpoint(listening=False)
    table = dataset_table().set_index("dataset")
    assert table.loc["emotion", "available"] == "no" and table.loc["gsm8k", "available"] == "yes"
    ok, why = get_dataset("emotion").available()
    assert not ok and "out of reach" in why and "cannot be reached" in why
    with pytest.raises(DatasetError, match="out of reach"):
        get_dataset("imdb_full").rows()
    with pytest.raises(ModelLoadError, match="out of reach here .* not in the local Hugging Face cache"):
        load_model(ModelSpec("someone/not-cached-model"))
    sock.close()


def test_reachable_hub_and_offline_switch(endpoint, monkeypatch):
    sock = endpoint(listening=True)
    assert hs.hub_status().reachable and get_dataset("emotion").available()[0]
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    assert not get_dataset("emotion").available()[0] and hs.hub_status().reachable  # models may still come
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hs.hub_status().why == "offline mode is on: HF_HUB_OFFLINE=1"
    sock.close()


def test_the_answer_is_kept_so_the_hub_is_asked_once(endpoint, monkeypatch):
    sock = endpoint(listening=False)
    calls = []
    real = hs._check
    monkeypatch.setattr(hs, "_check", lambda host, port: calls.append(host) or real(host, port))
    for _ in range(5):
        hs.hub_status()
    assert len(calls) == 1
    sock.close()


def test_behind_a_proxy_the_hub_is_not_refused_and_a_no_is_kept_briefly(endpoint, monkeypatch):
    sock = endpoint(listening=False)
    assert not hs.hub_status().reachable
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setattr(hs, "_cached", None)
    status = hs.hub_status()
    assert status.reachable and "proxy.example" in status.why  # huggingface_hub would go through the proxy
    assert hs.KEEP_NO_S < hs.KEEP_S
    sock.close()


def test_a_cached_hub_dataset_is_read_from_the_local_cache_when_the_hub_is_out_of_reach(endpoint, monkeypatch):
    import datasets

    from cnl_core.data import hub

    sock = endpoint(listening=False)
    seen, offline_before = [], datasets.config.HF_HUB_OFFLINE

    def cached_only(path, split=None, **kwargs):
        seen.append((path, datasets.config.HF_HUB_OFFLINE))
        if path == "dair-ai/emotion":
            return [{"text": "what a day", "label": 1}]
        raise FileNotFoundError(f"{path} is not in the cache")

    monkeypatch.setattr(datasets, "load_dataset", cached_only)
    rows = hub.load_hub_rows("dair-ai/emotion", "test", hub.emotion_sample)
    assert rows[0].target == " joy" and seen == [("dair-ai/emotion", True)]  # asked for the cache only
    with pytest.raises(DatasetError, match="out of reach .* no copy in the local cache"):
        hub.load_hub_rows("stanfordnlp/imdb", "test", hub.imdb_full_sample)
    assert seen[-1] == ("stanfordnlp/imdb", True) and datasets.config.HF_HUB_OFFLINE is offline_before  # restored
    sock.close()


def test_a_cached_hub_dataset_is_listed_as_available_while_the_hub_is_out_of_reach(endpoint):
    import datasets

    sock = endpoint(listening=False)
    (Path(datasets.config.HF_DATASETS_CACHE) / "dair-ai___emotion").mkdir(parents=True)  # left by a first load
    table = dataset_table().set_index("dataset")
    assert table.loc["emotion", "available"] == "yes" and table.loc["imdb_full", "available"] == "no"
    ok, why = get_dataset("emotion").available()
    assert ok and "out of reach" in why and "cached copy is used" in why
    assert "no copy is cached" in get_dataset("imdb_full").available()[1]
    sock.close()
