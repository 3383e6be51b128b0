"""The dashboard's layout and wiring: each tab builds its own components; this file connects them, each handler
to the components its parameters name (wiring.py)."""

from __future__ import annotations

import gradio as gr

from cnl_core import list_datasets, shared_mode

from . import costs, session_store
from .session import Session, session
from .tabs import (
    baseline_panel,
    compare_tab,
    data_tab,
    demo_panel,
    export_tab,
    harness_panel,
    inspector_panel,
    intervene_tab,
    knowledge_panel,
    locate_tab,
    model_tab,
    null_panel,
    steer_panel,
    studies_tab,
)
from .visitors import cancel_named, start_session, state_deleted, tab_closed
from .wiring import inputs, parameters

# Every model job's handler runs in this group, up to JOBS_AT_ONCE at a time: a stored result is served at once
# (result_cache.py), and work that must be computed waits for its turn in lanes.py's short- or long-job line,
# where the visitor sees their place. (One queue slot for all of them made a 2-second job wait for a locate.)
JOBS, JOBS_AT_ONCE = "model-jobs", 16
TITLE = (
    "# Capability Neuron Lab\nFind the FFN neurons a language model uses for a whole capability — and prove it "
    "by switching them off or up. *Commonality Neuron Localization (CNL), Huang et al., ICLR 2025.*"
)


def _labels(state):
    labels = session(state).labels()
    return gr.update(choices=labels, value=labels[-1] if labels else None)


_PAGE_VIEWS = (
    2 + 7 + 2 + 1 + 4 + 1 + len(session_store.SETTINGS)
)  # state, notice, compare, pickers, locate, iv, settings


def _restore_page(saved, state) -> tuple:
    """The work this browser kept, back in the page's session with every view that shows it; nothing changes
    where there was nothing to restore (or it was restored already)."""
    state, note = session_store.restore_ui(saved, session(state))
    views = _PAGE_VIEWS - 2 - len(session_store.SETTINGS)  # compare, the set pickers, locate, intervene
    if not note:
        return (state, *[gr.skip()] * (1 + views + len(session_store.SETTINGS)))
    kept = session_store.restored_settings(saved, data_tab.dataset_choices(state))
    boxes = [gr.update(value=kept[name]) if name in kept else gr.skip() for name in session_store.SETTINGS]
    return (
        state,
        note,
        *compare_tab.outputs(state),
        _labels(state),
        _labels(state),
        locate_tab.summary(state),
        *intervene_tab.restored_outputs(state),
        *boxes,
    )


RESTORE_TICKS = 15  # seconds a page waits for its browser's copy of the session before it stops looking


def _restore_tick(saved, state, ticks) -> tuple:
    """The timer's tick: once the page's session exists and the browser has handed over its copy (or after
    RESTORE_TICKS ticks without one), restore (at most once) and stop the timer."""
    ticks = int(ticks or 0) + 1
    ready = isinstance(state, Session) and bool(saved)
    out = _restore_page(saved, state) if ready else (gr.skip(),) * _PAGE_VIEWS
    stop = ready or ticks >= RESTORE_TICKS
    return (*out, ticks, gr.Timer(active=False) if stop else gr.skip())


def _inspect_linked(neuron, datasets, n, state, request: gr.Request = None, progress=gr.Progress()):
    """A `?neuron=` link: the neuron's inspector page, opened at once (from the result cache where it is stored)."""
    if not dict(getattr(request, "query_params", None) or {}).get("neuron") or not neuron:
        return gr.skip()  # no link, or one whose neuron could not be read (its note says so)
    return inspector_panel.inspect_ui(neuron, datasets, n, state, progress=progress)


def _estimate_line(demo: gr.Blocks, kind: str, line: gr.Markdown, *groups, state=None) -> None:
    """The expected time under a heavy button, for its current inputs: on page load and whenever one changes."""
    show = costs.describer(kind)
    named = {"state": state} if state is not None and "state" in parameters(show) else {}
    found = inputs(show, *groups, **named)
    for component in found:
        if component is not state and hasattr(component, "change"):
            component.change(show, found, line, queue=False, show_progress="hidden")
    demo.load(show, found, line, queue=False)


def build_app() -> gr.Blocks:
    policy = shared_mode.current()
    # shared: Gradio's copies of uploads and downloads older than an hour go, every ten minutes (a visitor's own
    # copies live in their session folder and go when the session ends)
    with gr.Blocks(title="Capability Neuron Lab", delete_cache=(600, 3600) if policy.shared else None) as demo:
        state = gr.State(None, delete_callback=state_deleted)  # Gradio drops a closed tab's state: free it
        gr.Markdown(TITLE)
        if policy.shared:
            gr.Markdown(policy.for_visitors(), elem_id="shared-mode")
        saved = gr.BrowserState(None, storage_key=session_store.STORAGE_KEY)  # the session, kept across a refresh
        notice = gr.Markdown(elem_id="session-notice")
        link_note = gr.Markdown(elem_id="link-note")
        link_plot = gr.Plot(show_label=False, visible=False, elem_id="link-plot")
        intro = demo_panel.build()
        # ids: a ?neuron= link selects the Compare tab; on a phone the seven tabs wrap onto a second line (Gradio's
        # default hides all but two behind a "..." menu)
        with gr.Tabs(overflow_behavior="wrap") as tabs:
            with gr.Tab("1 · Model", id="model"):
                model = model_tab.build()
            with gr.Tab("2 · Data", id="data"):
                data = data_tab.build()
            with gr.Tab("3 · Locate", id="locate"):
                loc = locate_tab.build()
            with gr.Tab("4 · Compare", id="compare"):
                cmp = compare_tab.build([d.name for d in list_datasets()])
            with gr.Tab("5 · Intervene", id="intervene"):
                iv = intervene_tab.build([d.name for d in list_datasets()])
            with gr.Tab("6 · Studies", id="studies"):
                std = studies_tab.build([d.name for d in list_datasets()])
            with gr.Tab("7 · Export", id="export"):
                exp = export_tab.build()

        heavy = {"concurrency_id": JOBS, "concurrency_limit": JOBS_AT_ONCE}
        bp = data.baselines  # the Data tab's "can the model do this?" marks, read whenever a model is loaded
        marks = (baseline_panel.panel_ui, [data.datasets, state], [data.datasets, bp.note])
        intro.button.click(demo_panel.demo_ui, inputs(demo_panel.demo_ui, intro, state=state), intro.outputs, **heavy)
        cancels = [(intro.cancel, cancel_named, intro.summary)]  # wired last: each Cancel stops any of the jobs below
        _estimate_line(demo, "demo", intro.estimate, intro)
        model_inputs = inputs(model_tab.estimate_ui, model)
        model.load_btn.click(
            model_tab.load_model_ui,
            inputs(model_tab.load_model_ui, model, state=state),
            [model.info, model.estimate, state],
            concurrency_id="model-info",
            concurrency_limit=4,
        ).then(*marks)
        # The estimate reads a config (maybe from the Hub): queued, two at a time, the latest input only.
        estimate = {"concurrency_id": "estimate", "concurrency_limit": 2, "trigger_mode": "always_last"}
        for ev in (model.name.submit, model.name.blur, *(p.change for p in model_inputs if p is not model.name)):
            ev(model_tab.estimate_ui, model_inputs, model.estimate, **estimate)

        bp.button.click(baseline_panel.measure_ui, [data.datasets, state], [data.datasets, bp.note], **heavy)
        cancels.append((bp.cancel, cancel_named, bp.note))
        _estimate_line(demo, "baselines", bp.estimate, state=state)
        data.preview_btn.click(data_tab.preview_splits, inputs(data_tab.preview_splits, data), data.split_rows)
        data.upload.upload(
            data_tab.inspect_upload,
            inputs(data_tab.inspect_upload, file=data.upload, state=state),
            [data.prompt_col, data.answer_col, data.upload_preview, state],
        )
        data.add_btn.click(
            data_tab.add_upload,
            inputs(data_tab.add_upload, data, state=state),
            [data.upload_msg, data.datasets, iv.targets, state],
        )

        show_compare = (compare_tab.refresh_ui, state, cmp.outputs)
        locate_ev = loc.locate_btn.click(
            locate_tab.locate_ui,
            inputs(locate_tab.locate_ui, data, loc.scoring, loc.thresholds, state=state),
            [loc.summary, state],
            **heavy,
        )
        settings = [
            data.datasets,
            data.n,
            data.k,
            data.seed,
            loc.thresholds.tau,
            loc.thresholds.p,
            iv.targets,
            iv.n,
            iv.fewshot,
            iv.mode,
            iv.factor,
        ]  # session_store.SETTINGS, in its order
        keep = (session_store.snapshot, [state, *settings], saved)  # after each change: the browser keeps it
        # 'Test on' follows a set the visitor picks, or a new one (located, reloaded): a step of those events, not a
        # change listener, which also fired on a restore and then undid the restored boxes (and a box ticked meanwhile)
        follow = (intervene_tab.follow_set, inputs(intervene_tab.follow_set, iv, state=state), iv.targets)
        chain = locate_ev
        for step in (keep, show_compare, (_labels, state, cmp.pick), (_labels, state, iv.located_on), follow):
            chain = chain.success(*step)
        cancels.append((loc.cancel_btn, locate_tab.cancel_ui, loc.summary))
        _estimate_line(demo, "locate", loc.estimate, data, loc.scoring)
        th = loc.thresholds
        loc.demo_btn.click(
            locate_tab.demo_settings,
            None,
            [
                data.datasets,
                data.n,
                data.k,
                data.seed,
                loc.scoring.method,
                th.rule,
                th.sign,
                th.tau,
                th.p,
                iv.targets,
                iv.n,
                iv.seed,
                iv.draws,
                iv.fewshot,
                iv.max_new,
                iv.factor,
            ],
            queue=False,
        )
        # every change applies, typed or dragged (a typed number applied only when the box lost focus), the latest only
        for ev in (th.tau.change, th.p.change, th.rule.change, th.sign.change, th.top_k.change, th.sigma.change):
            ev(
                locate_tab.relocalize_ui,
                inputs(locate_tab.relocalize_ui, th, state=state),
                [loc.summary, state],
                trigger_mode="always_last",
            ).success(*show_compare).success(*keep)
        loc.sweep_btn.click(locate_tab.sweep_ui, state, loc.sweep_plot)
        cmp.pick.change(
            compare_tab.compare_ui, inputs(compare_tab.compare_ui, selected=cmp.pick, state=state), cmp.outputs
        )
        insp = cmp.inspector
        inspect = (inspector_panel.inspect_ui, inputs(inspector_panel.inspect_ui, insp, state=state), insp.outputs)
        insp.click_map.select(
            inspector_panel.pick_from_map,
            inputs(inspector_panel.pick_from_map, label=cmp.pick, state=state),
            insp.neuron,
        ).success(*inspect, **heavy)
        cmp.top.select(
            inspector_panel.pick_from_table, inputs(inspector_panel.pick_from_table, table=cmp.top), insp.neuron
        ).success(*inspect, **heavy)
        insp.button.click(*inspect, **heavy)
        cancels.append((insp.cancel, cancel_named, insp.summary))
        _estimate_line(demo, "inspect", insp.estimate, insp)
        cmp.null.button.click(
            null_panel.null_ui,
            inputs(null_panel.null_ui, cmp.null, label=cmp.pick, state=state),
            cmp.null.output,
            **heavy,
        )
        cancels.append((cmp.null.cancel, cancel_named, cmp.null.output))
        _estimate_line(demo, "null", cmp.null.estimate, cmp.null)

        iv.located_on.input(*follow)
        iv.run_btn.click(intervene_tab.running_note, state, iv.reading, queue=False)
        iv_ev = iv.run_btn.click(
            intervene_tab.intervene_ui,
            inputs(intervene_tab.intervene_ui, iv, state=state),
            [*iv.outputs, iv.reading, state],
            **heavy,
        )
        iv_ev.success(*keep)
        _estimate_line(demo, "intervene", iv.estimate, iv)
        _estimate_line(demo, "dose", iv.dose_estimate, iv)
        _estimate_line(demo, "matrix", iv.matrix_estimate, iv, state=state)
        iv.matrix_btn.click(
            intervene_tab.matrix_ui, inputs(intervene_tab.matrix_ui, iv, state=state), [iv.matrix_plot, state], **heavy
        )
        st = iv.steering  # its own prompt and number of new tokens; the intervention is the tab's
        st.button.click(
            steer_panel.steer_ui,
            inputs(steer_panel.steer_ui, iv, prompt=st.prompt, max_new=st.max_new, state=state),
            st.outputs,
            **heavy,
        )
        cancels.append((st.cancel, cancel_named, st.note))
        _estimate_line(demo, "steer", st.estimate, st)
        iv.dose_btn.click(intervene_tab.dose_running, None, iv.dose_reading, queue=False)
        iv.dose_btn.click(
            intervene_tab.dose_ui,
            inputs(intervene_tab.dose_ui, iv, state=state),
            [iv.dose_plot, iv.dose_reading],
            **heavy,
        )
        if iv.harness.available:  # the optional lm-evaluation-harness: results join the same charts and history
            hp = iv.harness
            hp_ev = hp.button.click(
                harness_panel.harness_ui, inputs(harness_panel.harness_ui, iv, hp, state=state), state, **heavy
            )
            hp_ev.success(lambda s: intervene_tab.evaluation_outputs(session(s)), state, iv.outputs)
            hp.files.upload(
                harness_panel.take_task_files,
                inputs(harness_panel.take_task_files, hp, state=state),
                [hp.include, hp.files_msg],
            )
        cancels.append((iv.cancel_btn, intervene_tab.cancelled_ui, [*iv.outputs, iv.reading]))

        std.decouple_btn.click(
            studies_tab.decouple_ui,
            inputs(studies_tab.decouple_ui, std.decouple, loc.scoring, loc.thresholds, state=state),
            std.decouple_outputs,
            **heavy,
        )
        std.sharing_btn.click(studies_tab.sharing_ui, state, std.sharing_plot)
        std.knowledge.button.click(
            knowledge_panel.knowledge_ui,
            inputs(knowledge_panel.knowledge_ui, std.knowledge, tau=loc.thresholds.tau, state=state),
            std.knowledge.outputs,
            **heavy,
        )
        std.specific_btn.click(
            studies_tab.specificity_ui,
            inputs(studies_tab.specificity_ui, std.specific, fewshot=iv.fewshot, max_new=iv.max_new, state=state),
            std.specific_outputs,
            **heavy,
        )
        cancels += [
            (std.decouple_cancel, cancel_named, std.status),
            (std.specific_cancel, cancel_named, std.status),
            (std.knowledge.cancel, cancel_named, std.knowledge.outputs[0]),
        ]
        # One job per visitor: a Cancel anywhere stops it at its next step, whichever tab started it, and says which
        # it was. No Gradio `cancels=`: a cancelled event left its outputs marked "Error" (a Cancel on the Locate
        # tab that stopped a knowledge study left that study's page red); the job ends as "Cancelled" (errors.py).
        for button, handler, shown in cancels:
            button.click(handler, state, shown, queue=False).then(*keep)
        _estimate_line(demo, "decouple", std.decouple_estimate, std.decouple, loc.scoring)
        _estimate_line(demo, "specificity", std.specific_estimate, std.specific, iv, state=state)
        _estimate_line(demo, "knowledge", std.knowledge.estimate, std.knowledge)

        exp.export_btn.click(export_tab.export_ui, state, exp.files)
        exp.reload_file.upload(
            export_tab.reload_ui,
            inputs(export_tab.reload_ui, file=exp.reload_file, state=state),
            [exp.reload_msg, state, cmp.pick, iv.located_on],
        ).success(*show_compare).success(*follow).success(*keep)
        exp.save_btn.click(session_store.download_ui, state, exp.session_file)
        restored_views = [
            show_compare,
            (_labels, state, cmp.pick),
            (_labels, state, iv.located_on),
            follow,
            (locate_tab.summary_ui, state, loc.summary),
            (intervene_tab.restored_outputs, state, [*iv.outputs, iv.reading]),
            keep,
        ]
        chain = exp.restore_file.upload(session_store.upload_ui, [exp.restore_file, state], [exp.restore_msg, state])
        for step in restored_views:
            chain = chain.success(*step)
        # The browser's copy comes back on the page's load, or, where the browser read its storage after the load
        # event was sent (a busy server, a slow page), on a tick of a short timer once the page's session exists:
        # restored once, into that session.
        page_views = [
            state,
            notice,
            *cmp.outputs,
            cmp.pick,
            iv.located_on,
            loc.summary,
            *iv.outputs,
            iv.reading,
            *settings,
        ]
        restore_timer, ticks = gr.Timer(1.0), gr.State(0)
        restore_timer.tick(_restore_tick, [saved, state, ticks], [*page_views, ticks, restore_timer])
        # A new visitor sees the model's grid at once: loading (or finding) a model never waits behind other
        # visitors' long jobs, which hold the model's own lock only while they compute.
        demo.load(model_tab.estimate_ui, model_inputs, model.estimate, concurrency_id="estimate", concurrency_limit=2)
        chain = demo.load(start_session, None, state).then(_restore_page, [saved, state], page_views)
        demo.load(
            session_store.open_link, state, [link_note, link_plot, insp.neuron, tabs, insp.accordion], queue=False
        ).success(_inspect_linked, inputs(_inspect_linked, insp, state=state), insp.outputs, **heavy)
        chain.then(
            model_tab.load_model_ui,
            inputs(model_tab.load_model_ui, model, state=state),
            [model.info, model.estimate, state],
            concurrency_id="model-info",
            concurrency_limit=4,
        ).then(*marks)
        demo.unload(tab_closed)  # a closed tab's job stops at its next model step; its data is freed
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo
