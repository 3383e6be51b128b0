"""lm-eval task folders and YAMLs (issues #25, #32): read as data, bounded, malformed ones named; on a shared
dashboard the server never hands a task file to the harness (its child process does, after the allowlist:
test_task_allowlist.py), so an uploaded or visitor-named task file runs no code here."""

from pathlib import Path

import pytest

from cnl_core import fields as F
from cnl_core import shared_mode
from cnl_core.errors import HarnessError
from cnl_core.evaluate.task_files import check_task_folder, save_task_files
from cnl_core.shared_mode import Policy

TASK = """task: my_sums
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{q}}}}"
doc_to_target: "{{{{a}}}}"
"""


@pytest.fixture()
def payload(tmp_path):
    """An "upload folder" holding Python that leaves a marker when imported, and the marker's path."""
    upload = tmp_path / "upload"
    upload.mkdir()
    marker = tmp_path / "code-ran"
    (upload / "x.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\ndef fn(docs):\n    return docs\n"
    )
    (upload / "d.jsonl").write_text('{"q": "1+1=", "a": "2"}\n')
    return upload, marker


@pytest.fixture()
def shared(monkeypatch, tmp_path):
    monkeypatch.setattr(shared_mode, "_CURRENT", Policy(shared=True, allowed_paths=(shared_mode._resolved(tmp_path),)))


def test_a_malformed_task_yaml_is_named_with_its_line_not_called_an_unknown_task(tmp_path):
    pytest.importorskip("lm_eval")
    from cnl_core.evaluate.harness import HarnessSettings, task_manager

    (tmp_path / "good.yaml").write_text(TASK.format(data=tmp_path / "d.jsonl"))
    (tmp_path / "broken.yaml").write_text("task: broken\n  bad: [\n")
    with pytest.raises(HarnessError, match=r"The task file broken.yaml is not valid YAML at line 2"):
        task_manager(HarnessSettings(tasks="broken", include_path=str(tmp_path)))


def test_a_folder_too_big_to_be_a_task_folder_is_refused_without_walking_it(tmp_path, monkeypatch):
    pytest.importorskip("lm_eval")
    from cnl_core.evaluate.harness import HarnessSettings, task_manager

    with pytest.raises(HarnessError, match="holds more than 2,000 files"):
        check_task_folder(Path("/usr"))  # like `--include-path /`
    monkeypatch.setattr(F, "TASK_FOLDER_ENTRIES", 10)
    for i in range(12):
        (tmp_path / f"f{i}.txt").write_text("x")
    with pytest.raises(HarnessError, match="holds more than 10 files and folders"):
        task_manager(HarnessSettings(tasks="x", include_path=str(tmp_path)))


def test_a_shared_dashboard_builds_no_task_manager_in_the_server(payload, shared):
    """Route (a): YAML with `process_docs: !function <upload dir>/x.fn`: on a shared dashboard the server never
    reads task files into the harness (its child process does, after the allowlist): nothing is imported here."""
    pytest.importorskip("lm_eval")
    from cnl_core.evaluate.harness import HarnessSettings, task_manager

    upload, marker = payload
    (upload / "t.yaml").write_text(TASK.format(data=upload / "d.jsonl") + f"process_docs: !function {upload}/x.fn\n")
    assert task_manager(HarnessSettings(tasks="my_sums", include_path=str(upload))) is None
    assert not marker.exists()


def test_local_reading_names_tasks_and_reads_tags_as_text(tmp_path):
    (tmp_path / "t.yaml").write_text(TASK.format(data=tmp_path / "d.jsonl") + "process_docs: !function x.fn\n")
    assert check_task_folder(tmp_path) == ["my_sums"]  # local use: the user's own folder, read as data


def test_uploaded_task_files_are_checked_and_kept_as_given(payload, tmp_path):
    upload, marker = payload
    (upload / "t.yaml").write_text(TASK.format(data="d.jsonl"))
    folder = tmp_path / "session"
    assert save_task_files([upload / "t.yaml", upload / "d.jsonl"], folder) == ["my_sums"]
    assert (folder / "t.yaml").read_text() == (upload / "t.yaml").read_text() and (folder / "d.jsonl").exists()
    with pytest.raises(HarnessError, match="neither a task YAML nor a data file"):
        save_task_files([upload / "x.py"], tmp_path / "other")
    (upload / "evil.yaml").write_text(TASK.format(data="d.jsonl") + "process_docs: !function x.fn\n")
    with pytest.raises(HarnessError, match="!function"):
        save_task_files([upload / "evil.yaml", upload / "d.jsonl"], tmp_path / "third")
    assert not marker.exists()


def test_the_dashboard_keeps_the_last_good_task_upload_when_the_next_is_refused(payload, tmp_path, monkeypatch):
    import gradio as gr

    from ui.session import new_session
    from ui.tabs import harness_panel

    monkeypatch.setenv("CNL_CACHE_DIR", str(tmp_path / "cache"))
    upload, marker = payload
    (upload / "t.yaml").write_text(TASK.format(data="d.jsonl"))
    (upload / "evil.yaml").write_text(TASK.format(data="d.jsonl") + "process_docs: !function x.fn\n")
    state = new_session()
    include, msg = harness_panel.take_task_files([str(upload / "t.yaml"), str(upload / "d.jsonl")], state)
    assert "Checked and ready: my_sums" in msg and include == harness_panel.UPLOADED_TASKS  # no server path
    with pytest.raises(gr.Error, match="!function"):
        harness_panel.take_task_files([str(upload / "evil.yaml")], state)
    folder = state.task_folder()
    assert sorted(p.name for p in folder.iterdir()) == ["d.jsonl", "t.yaml"]  # the good upload is still there
    assert harness_panel.include_folder(include, state) == (str(folder), True)  # uploads always run isolated
    assert folder.is_relative_to(tmp_path / "cache" / "visitors" / state.id)  # inside the visitor's own folder
    state.end()
    assert not (tmp_path / "cache" / "visitors" / state.id).exists() and not marker.exists()
