"""Studies tab: the paper's first half. Do individual facts localize, as capabilities do?

Facts with paraphrases (built in, or the visitor's CSV), then any of: fidelity (per-paraphrase
Knowledge-Neurons sets, against CNL's split agreement on a capability and two nulls), causal tracing
(peak-layer agreement), reliability (zeroing/amplifying a fact's neurons) and per-layer editing next to the
traced effect. Sizes default to a classroom run; the CLI's `knowledge study` runs the README's sizes.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from cnl_core import (
    BUILTIN_RELATIONS,
    MAX_FACTS_CSV_BYTES,
    STUDY_PARTS,
    KnowledgeRequest,
    StudyConfig,
    builtin_facts,
    read_facts_csv,
    study_table,
)
from cnl_core import fields as F
from cnl_core.errors import DatasetError, ParameterError
from cnl_core.report import knowledge_charts
from cnl_core.report.readings import knowledge_takeaway

from .. import widgets
from ..jobs import Kind, job
from ..session import session

HELP = (
    "**Knowledge vs capability (the paper's first half).** The paper's title says capabilities can be "
    "localized *rather than individual knowledge*. Here each fact is asked in several wordings (built-in: "
    "capitals, opposites, languages, 2-shot; or your CSV with columns `subject, relation, answer, templates`, "
    "templates separated by ` | ` and holding `{subject}`). **Fidelity**: do a fact's paraphrases select the "
    "same neurons (Knowledge-Neurons rule, the Locate tab's tau), compared with CNL's split agreement on "
    "`add1_content` and two nulls (uniform chance; sets of unrelated prompts)? **Tracing**: do its paraphrases "
    "peak at one layer when the subject is corrupted and one layer restored? **Reliability**: does zeroing a "
    "fact's neurons erase it on held-out paraphrases, and only it? **Editing**: a rank-one edit at each "
    "layer: does editing work where tracing points?"
)
CLASSROOM_SHOTS = 2  # demonstrations before each prompt (the built-in facts were checked 2-shot)
CLASSROOM = StudyConfig(
    seed=0,
    fidelity_facts=4,
    capability_draws=5,
    trace_facts=2,
    trace_draws=1,
    reliability_facts=3,
    edit_facts=1,
    edit_layer_count=6,
    edit_steps=15,
)


def build() -> SimpleNamespace:
    gr.Markdown(HELP)
    with gr.Row():
        relations = gr.CheckboxGroup(
            [r.name for r in BUILTIN_RELATIONS], value=[r.name for r in BUILTIN_RELATIONS], label="built-in relations"
        )
        upload = gr.File(label="or your facts (CSV)", file_types=[".csv"], type="filepath")
        per_relation = widgets.number(F.FACTS_PER_RELATION, CLASSROOM.fidelity_facts)
        parts = gr.CheckboxGroup(list(STUDY_PARTS), value=list(STUDY_PARTS[:3]), label="parts (editing is the slowest)")
    with gr.Row():
        button = gr.Button("Run the knowledge study", variant="primary", elem_id="knowledge-btn")
        cancel = gr.Button("Cancel", variant="secondary", size="sm", min_width=80, scale=0)
        estimate = gr.Markdown()
    summary = gr.Markdown(elem_id="knowledge-summary")
    fidelity_plot = gr.Plot(show_label=False, elem_id="knowledge-fidelity-plot")
    reliability_plot = gr.Plot(show_label=False, elem_id="knowledge-reliability-plot")
    editing_plot = gr.Plot(show_label=False, elem_id="knowledge-editing-plot")
    return SimpleNamespace(
        relations=relations,
        upload=upload,
        per_relation=per_relation,
        parts=parts,
        button=button,
        cancel=cancel,
        estimate=estimate,
        outputs=[summary, fidelity_plot, reliability_plot, editing_plot],
    )


def _facts(relations, upload):
    if upload:
        path = Path(upload)
        if path.stat().st_size > MAX_FACTS_CSV_BYTES:
            raise DatasetError(f"The facts file is over {MAX_FACTS_CSV_BYTES // 2**20} MiB.")
        try:
            return read_facts_csv(path.read_text(encoding="utf-8"), CLASSROOM_SHOTS, "upload")
        except UnicodeDecodeError as exc:
            raise DatasetError("The facts file is not UTF-8 text.") from exc
    if not relations:
        raise ParameterError("Pick at least one relation, or upload your facts.")
    return builtin_facts(CLASSROOM_SHOTS, tuple(relations))


@job(Kind.KNOWLEDGE, outputs=4)
def knowledge_ui(relations, upload, per_relation, parts, tau, state, run):
    state = session(state)
    if not parts:
        raise ParameterError("Pick at least one part of the study.")
    k = F.FACTS_PER_RELATION.check(per_relation)
    cfg = replace(
        CLASSROOM,
        tau=F.TAU.check(tau),
        fidelity_facts=k,
        trace_facts=min(k, CLASSROOM.trace_facts),
        reliability_facts=min(k, CLASSROOM.reliability_facts),
    )
    facts = _facts(relations, upload).head(2 * k)  # the known check asks every paraphrase: only as many as needed
    request = KnowledgeRequest(facts, "study", cfg, study_parts=tuple(parts))
    cost = run.expected(relations=relations, per_relation=k, parts=parts)
    lm = state.model()
    with run.lane(cost):
        study = request.run(lm, run)
    text = "\n".join(study_table(study))
    if study.fidelity is not None:
        text = knowledge_takeaway(study.fidelity) + "\n\n" + text
    return (
        text,
        knowledge_charts.fidelity_chart(study.fidelity) if study.fidelity else None,
        knowledge_charts.reliability_chart(study.reliability) if study.reliability else None,
        knowledge_charts.editing_chart(study.editing) if study.editing else None,
    )
