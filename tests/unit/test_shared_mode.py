"""Shared mode (issue #25): when it is on, and what a visitor of a shared dashboard can no longer name or run.

The code-running holes are tried as a hostile visitor would: the payload writes a marker file when it runs,
and the test asserts the marker is absent, not only that an error came.
"""

import json

import pytest

from cnl_core import shared_mode
from cnl_core.errors import CNLError, DatasetError, ModelLoadError, ParameterError
from cnl_core.model.loading import ModelSpec, memory_plan
from cnl_core.shared_mode import Policy


@pytest.fixture()
def shared(monkeypatch, tmp_path):
    """Shared mode on, with one allowed folder; the process's policy is put back afterwards."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    policy = Policy(shared=True, why="test", allowed_paths=(shared_mode._resolved(allowed),))
    monkeypatch.setattr(shared_mode, "_CURRENT", policy)
    return allowed


@pytest.mark.parametrize(
    "env,kwargs,on",
    [
        ({}, {}, False),
        ({}, {"host": "127.0.0.1"}, False),
        ({"SPACE_ID": "someone/space"}, {}, True),
        ({}, {"share": True}, True),
        ({}, {"host": "0.0.0.0"}, True),
        ({"CNL_SHARED": "1"}, {}, True),
        ({"SPACE_ID": "x", "CNL_SHARED": "0"}, {}, False),  # the operator's explicit word wins
        ({"CNL_SHARED": "1"}, {"shared": False}, False),  # and the flag over the environment
    ],
)
def test_shared_mode_is_on_on_spaces_with_share_and_a_public_host(env, kwargs, on):
    assert Policy.from_env(env, **kwargs).shared is on


def test_the_operator_lists_come_from_flags_and_the_environment(tmp_path):
    policy = Policy.from_env(
        {
            "CNL_SHARED": "1",
            "CNL_ALLOWED_PATHS": f"{tmp_path}/a:{tmp_path}/b",
            "CNL_ALLOWED_MODELS": "gpt2, org/model",
            "CNL_ALLOW_PICKLE": "1",
        },
        allowed_models=("other/one",),
    )
    assert [p.name for p in policy.allowed_paths] == ["a", "b"]
    assert policy.allowed_models == ("other/one", "gpt2", "org/model") and policy.allow_pickle
    assert policy.allows_path(tmp_path / "a" / "x" / "m") and not policy.allows_path(tmp_path / "c")
    assert "Shared mode is on" in policy.describe() and "gpt2" in policy.describe()
    assert "off" in Policy().describe()
    assert "gpt2" in policy.for_visitors() and "yours alone" in policy.for_visitors()


def _config(folder, **extra):
    folder.mkdir(parents=True, exist_ok=True)
    config = dict(
        model_type="llama",
        vocab_size=100,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=128,
        **extra,
    )
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_config_whose_auto_map_names_uploaded_code_runs_nothing(shared, tmp_path):
    """Route (b): config.json + code in an upload folder, trust_remote_code asked for: the estimate alone ran it."""
    upload = _config(tmp_path / "upload", auto_map={"AutoConfig": "evil.EvilConfig"})
    marker = tmp_path / "ran"
    (upload / "evil.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
        "from transformers import LlamaConfig\nclass EvilConfig(LlamaConfig):\n    pass\n"
    )
    for trust in (True, False):
        with pytest.raises(ModelLoadError, match="This dashboard is shared"):
            memory_plan(ModelSpec(str(upload), device="cpu", trust_remote_code=trust))
    assert not marker.exists()


def test_shared_mode_loads_folders_only_under_allowed_paths_and_listed_hub_ids(shared, monkeypatch):
    plan = memory_plan(ModelSpec(str(_config(shared / "tiny")), device="cpu"))  # an allowed folder: fine
    assert plan.estimate.size.n_layers == 2
    monkeypatch.setattr(shared_mode, "_CURRENT", Policy(shared=True, allowed_models=("gpt2",)))
    with pytest.raises(ModelLoadError, match="loads only the built-in model 'smollm2-135m' and gpt2"):
        memory_plan(ModelSpec("someone/other", device="cpu"))
    with pytest.raises(ModelLoadError, match="does not open the model folder '/etc'"):
        memory_plan(ModelSpec("/etc", device="cpu"))
    assert memory_plan(ModelSpec("smollm2-135m", device="cpu")).estimate.fits  # the built-in model always


def test_local_use_keeps_its_freedom(tmp_path):
    assert not shared_mode.current().shared  # the test process is local
    plan = memory_plan(ModelSpec(str(_config(tmp_path / "anywhere")), device="cpu"))
    assert plan.estimate.size.n_layers == 2


def test_shared_mode_opens_no_dataset_file_outside_the_allowed_folders(shared, tmp_path):
    from cnl_core.data.uploads import resolve_dataset

    outside, inside = tmp_path / "secret.csv", shared / "mine.csv"
    for f in (outside, inside):
        f.write_text("question,answer\nWhat is 1+1?,2\n")
    with pytest.raises(ParameterError, match="does not open the dataset file"):
        resolve_dataset(str(outside))
    with pytest.raises(ParameterError, match="does not open"):
        resolve_dataset("../../etc/passwd.csv")
    assert resolve_dataset(str(inside)).rows()[0].target == "2"


def test_the_model_box_hides_trust_remote_code_in_shared_mode(shared):
    from ui.tabs.model_tab import estimate_ui, load_model_ui

    assert "This dashboard is shared: trust_remote_code stays off" in estimate_ui(
        "smollm2-135m", "auto", "cpu", "none", False, True
    )
    with pytest.raises(Exception, match="trust_remote_code stays off"):
        load_model_ui("smollm2-135m", "auto", "cpu", "none", False, True, None)


def test_refusals_are_the_librarys_own_sentences(shared):
    for call in (
        lambda: memory_plan(ModelSpec("/", trust_remote_code=False)),
        lambda: shared_mode.current().check_path("/etc/passwd", "dataset file"),
    ):
        with pytest.raises(CNLError):
            call()
    with pytest.raises(DatasetError):
        from cnl_core.data.samples import get_dataset

        get_dataset("upload-someone-else")
