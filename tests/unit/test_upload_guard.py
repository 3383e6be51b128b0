"""Uploads are data only (issue #25): Gradio's upload endpoint, posted to as a hostile visitor would, keeps data
files and refuses (and deletes) anything else, such as Python for a task YAML's `!function` to import."""

import os
from pathlib import Path

import gradio as gr
import httpx
import pytest

import dashboard


@pytest.fixture(scope="module")
def server():
    from tests.browser.flow import free_port

    args = dashboard.parse_args(["--port", str(free_port())])
    with gr.Blocks() as demo:
        gr.File(file_types=[".csv"])
    demo.launch(
        server_name="127.0.0.1",
        server_port=args.port,
        prevent_thread_lock=True,
        app_kwargs=dashboard.launch_options(args)["app_kwargs"],
    )
    try:
        yield f"http://127.0.0.1:{args.port}/gradio_api/upload"
    finally:
        demo.close()


def _post(url: str, *files: tuple[str, bytes]) -> httpx.Response:
    return httpx.post(url, files=[("files", (name, data)) for name, data in files], timeout=30)


def test_data_files_are_kept(server):
    answer = _post(server, ("rows.csv", b"q,a\n1+1?,2\n"), ("task.yaml", b"task: t\n"))
    assert answer.status_code == 200
    paths = answer.json()
    assert [Path(p).name for p in paths] == ["rows.csv", "task.yaml"] and all(Path(p).is_file() for p in paths)


@pytest.mark.parametrize("name", ["x.py", "evil.pyc", "model.bin", "run.sh", "noext", "x.csv.py"])
def test_anything_else_is_refused_and_deleted_with_its_whole_request(server, name):
    before = {p for p in Path(os.environ["GRADIO_TEMP_DIR"]).rglob("*") if p.is_file()}
    answer = _post(server, ("rows.csv", b"q,a\n"), (name, b"import os\n"))
    assert answer.status_code == 400
    assert f"Uploads are data only: '{name}' is refused" in answer.text
    after = {p for p in Path(os.environ["GRADIO_TEMP_DIR"]).rglob("*") if p.is_file()}
    assert not {p.name for p in after - before} & {name, "rows.csv"}  # nothing of the request stayed


def test_other_routes_pass_untouched(server):
    assert httpx.get(server.replace("/gradio_api/upload", "/config"), timeout=30).status_code == 200
