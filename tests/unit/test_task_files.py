"""lm-eval task folders and YAMLs (issue #25): read as data, bounded, malformed ones named; in shared mode an
uploaded or visitor-named task file runs no code (route (a): `!function` naming uploaded Python)."""

from pathlib import Path

import pytest

from cnl_core import fields as F
from cnl_core import shared_mode
from cnl_core.errors import HarnessError, ParameterError
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
    (upload / "x.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('x')\n"
                                 "def fn(docs):\n    return docs\n")
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
        check_task_folder(Path("/usr"), strict=False)  # like `--include-path /`
    monkeypatch.setattr(F, "TASK_FOLDER_ENTRIES", 10)
    for i in range(12):
        (tmp_path / f"f{i}.txt").write_text("x")
    with pytest.raises(HarnessError, match="holds more than 10 files and folders"):
        task_manager(HarnessSettings(tasks="x", include_path=str(tmp_path)))


def test_uploaded_python_named_by_a_task_yaml_is_never_imported_in_shared_mode(payload, shared):
    """Route (a): YAML with `process_docs: !function <upload dir>/x.fn`, its folder named as the include path."""
    pytest.importorskip("lm_eval")
    from cnl_core.evaluate.harness import HarnessSettings, task_manager

    upload, marker = payload
    (upload / "t.yaml").write_text(TASK.format(data=upload / "d.jsonl") + f"process_docs: !function {upload}/x.fn\n")
    with pytest.raises(HarnessError, match="t.yaml is refused at line 10: the tag !function could run code"):
        task_manager(HarnessSettings(tasks="my_sums", include_path=str(upload)))
    assert not marker.exists()


@pytest.mark.parametrize("extra,words", [
    ("process_docs: !function x.fn\n", "the tag !function could run code"),
    ("metadata: !!python/name:os.system\n", "the tag tag:yaml.org,2002:python/name:os.system could run code"),
    ("a: &x [1]\nb: *x\n", "YAML aliases"),
    ("include: /etc/other.yaml\n", "include: '/etc/other.yaml' must name a file of its own folder"),
    ("include: ../other.yaml\n", "must name a file of its own folder"),
    ("dataset_kwargs:\n  trust_remote_code: true\n", "trust_remote_code would run a dataset's own code"),
    ("gen_prefix: \"{{ ''.__class__ }}\"\n", "reaches for a '__' attribute"),
])
def test_strict_reading_refuses_whatever_could_run_code(tmp_path, extra, words):
    (tmp_path / "t.yaml").write_text(TASK.format(data=tmp_path / "d.jsonl") + extra)
    with pytest.raises(HarnessError, match=words):
        check_task_folder(tmp_path, strict=True)
    assert check_task_folder(tmp_path, strict=False) == ["my_sums"]  # local use reads the same file as data


@pytest.mark.parametrize("data,words", [("/etc/passwd", "is a path outside the task's folder"),
                                        ("d.jsonl", "is a relative path")])
def test_strict_reading_refuses_data_files_outside_the_folder(tmp_path, data, words):
    (tmp_path / "t.yaml").write_text(TASK.format(data=data))
    with pytest.raises(HarnessError, match=words):
        check_task_folder(tmp_path, strict=True)


def test_shared_mode_names_no_server_folder_as_include_path(shared, tmp_path):
    pytest.importorskip("lm_eval")
    from cnl_core.evaluate.harness import HarnessSettings, task_manager

    with pytest.raises(ParameterError, match="This dashboard is shared: it does not open the task folder '/etc'"):
        task_manager(HarnessSettings(tasks="x", include_path="/etc"))
    with pytest.raises(ParameterError, match="folder of task YAMLs: 2,000 characters is too long"):
        task_manager(HarnessSettings(tasks="x", include_path="x" * 2000))


def test_uploaded_task_files_are_checked_and_their_data_pointed_at(payload, tmp_path):
    upload, marker = payload
    (upload / "t.yaml").write_text(TASK.format(data="d.jsonl"))
    folder = tmp_path / "session"
    assert save_task_files([upload / "t.yaml", upload / "d.jsonl"], folder) == ["my_sums"]
    assert f"test: {folder}/d.jsonl" in (folder / "t.yaml").read_text()
    assert check_task_folder(folder, strict=True) == ["my_sums"]
    with pytest.raises(HarnessError, match="neither a task YAML nor a data file"):
        save_task_files([upload / "x.py"], tmp_path / "other")
    (upload / "evil.yaml").write_text(TASK.format(data="d.jsonl") + "process_docs: !function x.fn\n")
    with pytest.raises(HarnessError, match="!function"):
        save_task_files([upload / "evil.yaml", upload / "d.jsonl"], tmp_path / "third")
    assert not marker.exists()


def test_templates_render_in_a_sandbox_in_shared_mode(monkeypatch):
    pytest.importorskip("lm_eval")
    import lm_eval.utils
    from jinja2.exceptions import SecurityError

    from cnl_core.evaluate.harness import sandbox_templates

    monkeypatch.setattr(lm_eval.utils, "env", lm_eval.utils.env)  # put back after the test
    sandbox_templates()
    assert lm_eval.utils.apply_template("{{ q | regex_replace('1', 'one') }}=", {"q": "1+1"}) == "one+one="
    with pytest.raises(SecurityError):
        lm_eval.utils.apply_template("{{ cycler.__init__.__globals__ }}", {})


def test_the_dashboard_keeps_the_last_good_task_upload_when_the_next_is_refused(payload):
    import gradio as gr

    from ui.session import new_session
    from ui.tabs import harness_panel

    upload, marker = payload
    (upload / "t.yaml").write_text(TASK.format(data="d.jsonl"))
    (upload / "evil.yaml").write_text(TASK.format(data="d.jsonl") + "process_docs: !function x.fn\n")
    state = new_session()
    include, msg = harness_panel.take_task_files([str(upload / "t.yaml"), str(upload / "d.jsonl")], state)
    assert "Checked and ready: my_sums" in msg and include == str(state.task_folder())
    with pytest.raises(gr.Error, match="!function"):
        harness_panel.take_task_files([str(upload / "evil.yaml")], state)
    assert check_task_folder(Path(include), strict=True) == ["my_sums"]  # the good upload is still there
    assert f"test: {include}/d.jsonl" in (Path(include) / "t.yaml").read_text()
    state.end()
    assert not Path(include).exists() and not marker.exists()
