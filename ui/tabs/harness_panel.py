"""lm-evaluation-harness tasks in the Intervene tab, next to the built-in datasets.

The harness's own tasks and metrics, scored with the located neurons changed as chosen above and with
the random-control draws; results join the same charts and history as built-in datasets. Where the
optional harness is not installed, the panel says how to install it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from cnl_core import (
    DATA_SUFFIXES,
    TASK_SUFFIXES,
    HarnessSettings,
    Intervention,
    check_harness_positions,
    harness_available,
    run_harness_eval,
    save_task_files,
    shared_mode,
    task_manager,
)
from cnl_core import fields as F
from cnl_core.errors import HarnessError

from ..errors import shows_errors
from ..jobs import Kind, job
from ..session import session
from ..upload_guard import discard_upload

UPLOADED_TASKS = "(your uploaded tasks)"  # what the include box shows for the visitor's uploads: no server path

HELP = (
    "**Or test on lm-evaluation-harness tasks** (ARC, HellaSwag, MMLU-Pro, or your own task YAML): the harness's "
    "own prompts and metrics, with the located neurons changed as set above and the random-control draws. "
    "'n test samples' is the harness's limit per task; bars are ±1.96 harness standard errors. Public tasks "
    "download their data from the Hugging Face Hub the first time."
)


def build() -> SimpleNamespace:
    ok, why = harness_available()
    if not ok:
        gr.Markdown(f"**lm-evaluation-harness tasks:** {why}")
        return SimpleNamespace(available=False)
    gr.Markdown(HELP)
    with gr.Row():
        tasks = gr.Textbox(
            label="lm-eval tasks (comma-separated)",
            placeholder="arc_easy,hellaswag",
            scale=2,
            elem_id="lm-eval-tasks",
            max_length=F.TASK_NAMES.max_chars,
        )
        include = gr.Textbox(
            label=_include_label(shared_mode.current()),
            scale=2,
            elem_id="lm-eval-include",
            max_length=F.TASK_FOLDER.max_chars,
        )
        button = gr.Button("Run on lm-eval tasks", elem_id="lm-eval-btn")
    with gr.Row():
        files = gr.File(
            label="or upload task YAMLs and their data files (read as data: no !function)",
            file_count="multiple",
            file_types=list(TASK_SUFFIXES + DATA_SUFFIXES),
            elem_id="lm-eval-files",
        )
        files_msg = gr.Markdown(elem_id="lm-eval-files-msg")
    return SimpleNamespace(
        available=True, tasks=tasks, include=include, button=button, files=files, files_msg=files_msg
    )


def _include_label(policy: shared_mode.Policy) -> str:
    if not policy.shared:
        return "folder of your own task YAMLs (optional)"
    folders = ", ".join(map(str, policy.allowed_paths)) or "none on this shared dashboard: upload them below"
    return f"folder of task YAMLs (optional; under: {folders})"


@shows_errors
def take_task_files(files, state):
    """Uploaded task YAMLs (and their data) read against the allowlist and put in the session's task folder; the
    include box then names them by an opaque label (never the server's folder). A new upload replaces the last."""
    state = session(state)
    paths = [Path(f if isinstance(f, str) else f.name) for f in files or []]
    if not paths:
        return gr.update(), ""
    if len(paths) > F.TASK_UPLOAD_FILES:
        raise HarnessError(f"{len(paths)} files at once; upload at most {F.TASK_UPLOAD_FILES}.")
    state.space.admit(sum(p.stat().st_size for p in paths))
    folder = state.task_folder()
    staging = folder.with_name("tasks-new")  # checked beside the last upload, which stays until then
    shutil.rmtree(staging, ignore_errors=True)
    try:
        names = save_task_files(paths, staging)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # all or nothing
        for path in paths:  # Gradio's copies go now, not at the next clean-up
            discard_upload(path)
    return UPLOADED_TASKS, (
        f"Checked and ready: {', '.join(names)}. Name them in the tasks box; they run in a process of their own."
        if names
        else "No task YAML among the files (a YAML's `task:` names it)."
    )


def include_folder(include: str | None, state) -> tuple[str | None, bool]:
    """(the include path, whether the run is isolated) for the include box's text: the label of the visitor's
    uploads names their task folder (run in a child process, wherever the lab runs); anything else is a folder
    (on a shared lab, one the operator allowed; every run there is isolated)."""
    text = F.TASK_FOLDER.check(include).strip()
    if text == UPLOADED_TASKS:
        folder = state.task_folder()
        if not folder.is_dir():
            raise HarnessError("Upload your task files first (the files box below the tasks).")
        return str(folder), True
    policy = shared_mode.current()
    if text and policy.shared:
        policy.check_path(text, "task folder")
    return text or None, policy.shared


@job(Kind.LM_EVAL, outputs=1)
def harness_ui(
    located_on,
    mode,
    factor,
    positions,
    tasks,
    include,
    n,
    seed,
    draws,
    fewshot,
    max_new,
    overlap,
    state,
    run,
):
    """Run the tasks unmodified, intervened and under controls; the run joins the session's history."""
    state = session(state)
    located = state.located_set(located_on)
    folder, isolated = include_folder(include, state)
    # the n box is shared with the built-in evaluation: it is never "the whole task", an empty box is refused
    settings = HarnessSettings.from_inputs(tasks, folder, F.EVAL_N.check(n), fewshot, max_new)
    iv = Intervention.from_inputs(located.neurons, mode, factor, positions)
    check_harness_positions(iv)  # refused before the model is asked for
    draws, seed = F.HARNESS_DRAWS.check(draws), F.SEED.check(seed)
    manager = None if isolated else task_manager(settings)  # an unknown task is refused before any model work
    lm = state.model_for(located.grid)
    with run.lane():  # its length is unknown until the harness builds its tasks: the long line, by its kind
        res = run_harness_eval(
            lm,
            settings,
            iv,
            control_draws=draws,
            control_may_overlap=bool(overlap),
            seed=seed,
            manager=manager,
            located_on=located_on,
            progress=run.report,
            cancel=run.cancel,
            isolated=isolated,
            scratch=state.space.folder("jobs"),
        )
    state.history.append(res.as_eval_results())
    return state
