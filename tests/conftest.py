"""Shared fixtures: one load of the real default model per test session; no network."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup fails fast instead of retrying for a minute
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


@pytest.fixture(scope="session")
def lm():
    """The real pretrained default model (SmolLM2-135M), loaded once."""
    from cnl_core.model.loading import load_model

    return load_model("smollm2-135m")


@pytest.fixture()
def score_cache(tmp_path, monkeypatch):
    """A fresh, empty score cache for one test (the converted model stays in the shared cache)."""
    from cnl_core.paths import cache_root

    models = cache_root() / "models"
    folder = tmp_path / "cache"
    folder.mkdir()
    if models.is_dir():
        (folder / "models").symlink_to(models.resolve())
    monkeypatch.setenv("CNL_CACHE_DIR", str(folder))
    return folder
