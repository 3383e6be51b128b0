"""Tab 2: pick datasets and k disjoint seeded subsamples; add a CSV/JSONL file of one's own.

An upload is read row by row (cnl_core/data/tables.py): the preview keeps its columns and first rows,
"Add dataset" reads it again for the two chosen columns only, and the dataset belongs to the visitor's
session (at most fields.SESSION_UPLOADS of them; the process forgets them when the session ends).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pandas as pd

from cnl_core import (
    dataset_from_records,
    forget_datasets,
    get_dataset,
    list_datasets,
    make_splits,
    open_records,
    scan_table,
)
from cnl_core import fields as F
from cnl_core.errors import DatasetError
from cnl_core.options import DEFAULTS

from .. import widgets
from ..errors import shows_errors
from ..session import PendingUpload, Session, session
from ..upload_guard import discard_upload
from . import baseline_panel
from .locate_tab import split_numbers

HELP = (
    "A **capability** is what a whole dataset asks for (maths, sentiment, code). CNL draws **k disjoint "
    "subsamples of n rows** and locates neurons on each: if the capability is localized, the splits agree. "
    "Upload your own CSV/JSONL to test another capability.\n\n*Next: **3 · Locate**, press Locate neurons.*"
)


def dataset_table() -> pd.DataFrame:
    rows = []
    for d in list_datasets():
        ok, why = d.available()
        n = len(d.rows()) if ok and not d.hub else d.expected_rows
        rows.append(
            {
                "dataset": d.name,
                "task": d.kind,
                "rows": n,
                "available": "yes" if ok else "no",
                "source": d.source,
                "what": d.description,
            }
        )
    return pd.DataFrame(rows)


def builtin_names() -> list[str]:
    return [d.name for d in list_datasets() if d.source != "upload"]


def dataset_choices(state: Session) -> list[str]:
    """The datasets this visitor's boxes offer: the built-in ones and their own uploads."""
    return builtin_names() + state.uploads


def build() -> SimpleNamespace:
    gr.Markdown(HELP)
    datasets = gr.CheckboxGroup(
        builtin_names(),
        value=[DEFAULTS.dataset],
        label="Datasets",
        elem_id="datasets",
        info="each marked with the loaded model's measured accuracy once it is known",
    )
    baselines = baseline_panel.build()
    with gr.Row():
        n = widgets.number(F.N_SPLIT, DEFAULTS.n)
        k = widgets.number(F.SPLITS, DEFAULTS.splits)
        seed = widgets.number(F.SEED, DEFAULTS.seed)
        preview_btn = gr.Button("Show chosen rows")
    split_rows = gr.Dataframe(
        label="First rows of each split",
        wrap=True,
        max_height=300,
        elem_id="split-rows",
        headers=["dataset", "split", "id", "prompt", "gold"],
    )
    with gr.Accordion("All datasets", open=False):
        gr.Dataframe(dataset_table(), wrap=True)
    with gr.Accordion("Upload your own CSV / JSONL", open=False):
        upload = gr.File(
            label="CSV or JSONL file (max 50 MiB)",
            file_types=[".csv", ".jsonl", ".json", ".tsv"],
            elem_id="upload-file",
        )
        with gr.Row():
            prompt_col = gr.Dropdown([], label="prompt column")
            answer_col = gr.Dropdown([], label="answer column")
            labels = gr.Textbox("", label="labels (comma-separated, for classification)", max_length=F.LABELS.max_chars)
        with gr.Row():
            up_name = gr.Textbox("my-data", label="name", max_length=F.UPLOAD_NAME.max_chars)
            template = gr.Textbox(
                "{prompt}", label="prompt template (must contain {prompt})", max_length=F.TEMPLATE.max_chars
            )
            add_btn = gr.Button("Add dataset")
        upload_preview = gr.Dataframe(label="Preview", wrap=True, max_height=220)
        upload_msg = gr.Markdown()
    return SimpleNamespace(
        datasets=datasets,
        baselines=baselines,
        n=n,
        k=k,
        seed=seed,
        preview_btn=preview_btn,
        split_rows=split_rows,
        upload=upload,
        prompt_col=prompt_col,
        answer_col=answer_col,
        labels=labels,
        up_name=up_name,
        template=template,
        add_btn=add_btn,
        upload_preview=upload_preview,
        upload_msg=upload_msg,
    )


@shows_errors
def inspect_upload(file, state):
    """Columns and a preview of an uploaded file; a file that cannot be read clears both and says why."""
    state = session(state)
    cleared = gr.update(choices=[], value=None), gr.update(choices=[], value=None), pd.DataFrame()
    state.pending_upload = None
    if file is None:
        return (*cleared, state)
    given = Path(file if isinstance(file, str) else file.name)
    path = state.space.take_upload(given)
    discard_upload(given)  # Gradio's copy goes now; the visitor's lives and dies with the session
    try:
        scan = scan_table(path)
    except DatasetError as exc:
        gr.Warning(str(exc), duration=None)
        return (*cleared, state)
    cols = scan.columns
    state.pending_upload = PendingUpload(str(path), path.name, cols, scan.rows)
    preview = pd.DataFrame(scan.preview).map(lambda v: v[:120] if isinstance(v, str) else v)
    answer_guess = next((c for c in cols if c.lower() in ("answer", "label", "target", "output")), cols[-1])
    return gr.update(choices=cols, value=cols[0]), gr.update(choices=cols, value=answer_guess), preview, state


@shows_errors
def add_upload(up_name, prompt_col, answer_col, labels, template, datasets, state):
    state = session(state)
    pending = state.pending_upload
    if not pending:
        raise DatasetError("Upload a CSV or JSONL file first.")
    name, labels, template = F.UPLOAD_NAME.check(up_name), F.LABELS.check(labels), F.TEMPLATE.check(template)
    safe_name = "".join(ch for ch in (name or "my-data") if ch.isalnum() or ch in "-_")[:40] or "my-data"
    spec, report = dataset_from_records(
        open_records(pending.path, pending.filename),
        f"upload-{safe_name}-{state.id[:6]}",
        prompt_col,
        answer_col,
        labels=labels.split(","),
        prompt_template=template or "{prompt}",
        owner=state.id,
    )
    dropped = forget_datasets(state.id, keep=F.SESSION_UPLOADS)  # the oldest go: one visitor's memory is bounded
    state.uploads = [u for u in state.uploads if u != spec.name and u not in dropped] + [spec.name]
    msg = (
        f"Added **{spec.name}** ({spec.kind}): {report['rows_used']} rows used of {report['rows_in_file']}; "
        f"{report['missing']} missing a prompt/answer, {report['duplicates']} duplicates, "
        f"{report['unknown_label']} with an unknown label were skipped."
    )
    if dropped:
        msg += f" Set aside to stay within {F.SESSION_UPLOADS} uploaded datasets: {', '.join(dropped)}."
    choices = dataset_choices(state)
    kept = [c for c in datasets or [] if c in choices and c != spec.name]
    return msg, gr.update(choices=choices, value=kept + [spec.name]), gr.update(choices=choices), state


@shows_errors
def preview_splits(datasets, n, k, seed):
    rows = []
    for name in datasets or []:
        spec = get_dataset(name)
        by_id = spec.by_id()
        for s_idx, ids in enumerate(make_splits(spec, *split_numbers(n, k, seed))):
            for sid in ids[:5]:
                rows.append(
                    {
                        "dataset": name,
                        "split": s_idx,
                        "id": sid,
                        "prompt": by_id[sid].prompt[:160],
                        "gold": by_id[sid].target[:40],
                    }
                )
    return pd.DataFrame(rows)
