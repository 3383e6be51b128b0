"""Tab 7: download everything (JSON, CSV, PNG/SVG) and re-load a located set from a file."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from cnl_core import MODELS, LocateResult
from cnl_core.errors import ParameterError
from cnl_core.report.exports import write_exports

from ..errors import shows_errors
from ..session import Located, session

HELP = (
    "Download everything: located neurons and full parameters as JSON (reload them later), tables as CSV, "
    "charts as PNG/SVG."
)


def build() -> SimpleNamespace:
    gr.Markdown(HELP)
    export_btn = gr.Button("Prepare downloads", variant="primary")
    files = gr.File(label="Files", file_count="multiple")
    reload_file = gr.File(label="Re-load a located-neurons JSON", file_types=[".json"])
    reload_msg = gr.Markdown()
    gr.Markdown(
        "**Your whole session as one file**: located sets and every Intervene run (it also survives a "
        "refresh in this browser). Upload it later, or on another computer, to bring them back."
    )
    with gr.Row():
        save_btn = gr.Button("Save my session (JSON)", elem_id="session-save")
        session_file = gr.File(label="Session file", elem_id="session-file")
        restore_file = gr.File(label="Restore a session file", file_types=[".json"], elem_id="session-restore")
    restore_msg = gr.Markdown(elem_id="session-restore-msg")
    return SimpleNamespace(
        export_btn=export_btn,
        files=files,
        reload_file=reload_file,
        reload_msg=reload_msg,
        save_btn=save_btn,
        session_file=session_file,
        restore_file=restore_file,
        restore_msg=restore_msg,
    )


@shows_errors
def export_ui(state) -> list[str]:
    """Write every result of this session into its folder (exports/, replacing the last) and offer them."""
    state = session(state)
    if not state.located and not state.evals:
        raise ParameterError("Nothing to export yet.")
    located = {label: (e.result, e.prominence()) for label, e in state.located.items()}
    folder = state.space.folder("exports")
    shutil.rmtree(folder, ignore_errors=True)  # the last export goes: one set of downloads per visitor
    files = write_exports(folder, located, state.evals, state.matrix)
    try:
        state.space.admit(0)
    except ParameterError:
        shutil.rmtree(folder, ignore_errors=True)  # over the quota: the files go and the visitor reads why
        raise
    return [str(f) for f in files]


@shows_errors
def reload_ui(file, state):
    """Re-load a located-neurons JSON (from the CLI or an earlier export) into this session; all or nothing."""
    state = session(state)
    if file is None:
        return "", state, gr.update(), gr.update()
    result = LocateResult.read(Path(file if isinstance(file, str) else file.name))
    label = f"{result.model}:{result.dataset} (reloaded)"
    state.located[label] = Located(result)
    choices = state.labels()
    lm = MODELS.peek(state.spec)
    note = (
        ""
        if lm is None or lm.grid == result.grid
        else (
            f" They are on a grid of {result.grid.n_layers} x {result.grid.width} neurons; the loaded model has "
            f"{lm.grid.n_layers} x {lm.grid.width}: compare them freely, and load their model before Intervene."
        )
    )
    return (
        f"Reloaded **{label}**: {result.n_located} neurons.{note}",
        state,
        gr.update(choices=choices, value=label),
        gr.update(choices=choices, value=label),
    )
