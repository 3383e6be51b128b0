"""Hub items without a Hub: marked unavailable at once (one quick connection), never an error 20 s later."""

import socket

import pytest

from cnl_core import hub_status as hs
from cnl_core.data.samples import get_dataset
from cnl_core.errors import DatasetError, ModelLoadError
from cnl_core.model.loading import ModelSpec, load_model
from ui.tabs.data_tab import dataset_table


@pytest.fixture()
def endpoint(monkeypatch):
    """Point the Hub at a local port: closed (out of reach) or listening (reachable)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
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
    assert hs.hub_status().why == "offline mode is on (HF_HUB_OFFLINE)"
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
