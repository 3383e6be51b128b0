"""A student's work survives a refresh and travels: browser storage, one JSON file, and links for the room.

Why: a refresh wiped a student's located sets and results with no warning, and a teacher could not put one
neuron or one result on every screen. Here the session's located sets and Intervene runs are written, after each
change, into the browser's own storage (gr.BrowserState: encrypted with this server's secret, so a restarted
server starts afresh) and read back on the next page load; the same document downloads and uploads as one JSON
file (cnl_core/experiments/session_file.py reads it through the checked codec: no Python objects). A link with
`?neuron=LAYER:INDEX` opens that neuron's inspector page, and `?result=KIND/KEY` a stored result, for anyone in
the room: both come from the result cache, without the model where the work was done before.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from cnl_core import (
    RESULTS,
    DemoResult,
    EvalResult,
    cache_root,
    parse_neuron,
    read_json,
    read_session,
    session_json,
    write_json,
)
from cnl_core.errors import CNLError, ParameterError, ResultFileError
from cnl_core.report import charts
from cnl_core.report.readings import demo_reading, evaluation_readings

from .errors import shows_errors
from .session import Located, Session, session

STORAGE_KEY = "cnl-session"
LINK_KINDS = {"demo": DemoResult, "intervene": EvalResult}  # what a ?result= link may open


# The boxes a session keeps besides its results, by name: the Data, Locate and Intervene settings a student set.
SETTINGS = ("datasets", "n", "k", "seed", "tau", "p", "targets", "eval_n", "fewshot", "mode", "factor")


def snapshot(
    state,
    datasets=None,
    n=None,
    k=None,
    seed=None,
    tau=None,
    p=None,
    targets=None,
    eval_n=None,
    fewshot=None,
    mode=None,
    factor=None,
) -> dict | None:
    """The document kept in the browser after each change, with the SETTINGS boxes' values (None: nothing to keep
    yet)."""
    state = session(state)
    if not state.located and not state.history:
        return None
    values = dict(
        datasets=datasets,
        n=n,
        k=k,
        seed=seed,
        tau=tau,
        p=p,
        targets=targets,
        eval_n=eval_n,
        fewshot=fewshot,
        mode=mode,
        factor=factor,
    )
    return session_json(
        {label: e.result for label, e in state.located.items()},
        state.history,
        {name: values[name] for name in SETTINGS if values[name] is not None},
    )


def restored_settings(saved, choices: list[str]) -> dict:
    """The settings in the browser's copy (plain values only); dataset lists keep only the datasets offered."""
    settings = (saved or {}).get("settings") if isinstance(saved, dict) else None
    if not isinstance(settings, dict):
        return {}
    out = {k: v for k, v in settings.items() if k in SETTINGS and isinstance(v, (str, int, float, list))}
    for key in ("datasets", "targets"):
        if key in out:
            out[key] = (
                [d for d in out[key] if isinstance(d, str) and d in choices] if isinstance(out[key], list) else []
            )
    return out


def _merge(state: Session, doc, source: str) -> str:
    restored = read_session(doc, source)
    for label, result in restored.located.items():
        state.located.setdefault(label, Located(result))
    state.history.extend(restored.history)
    return (
        f"Restored {len(restored.located)} located set{'s' * (len(restored.located) != 1)} and "
        f"{len(restored.history)} Intervene run{'s' * (len(restored.history) != 1)}"
    )


def restore_ui(saved, state) -> tuple:
    """Page load: the work this browser kept, put back into the new session; a document that cannot be read is
    set aside with a sentence (the page works on, empty)."""
    state = session(state)
    if not saved or state.located or state.history:
        return state, ""
    try:
        done = _merge(state, saved, "your saved work")
    except ResultFileError as exc:
        return state, f"*Your saved work could not be restored ({exc}); this page starts empty.*"
    return state, f"*{done} from this browser (they survive a refresh; Export tab: save them as a file).*"


@shows_errors
def download_ui(state) -> str:
    """The session as one JSON file to keep or hand on."""
    doc = snapshot(state)
    if doc is None:
        raise ParameterError("Nothing to save yet: locate neurons or run an intervention first.")
    return str(write_json(cache_root() / "exports" / session(state).id / "cnl-session.json", doc))


@shows_errors
def upload_ui(file, state) -> tuple:
    """A session file: its sets and runs join this session (all or nothing)."""
    state = session(state)
    if file is None:
        return "", state
    path = Path(file if isinstance(file, str) else file.name)
    done = _merge(state, read_json(path, "session file"), path.name)
    return f"{done} from {path.name}.", state


def labels_update(state) -> dict:
    labels = session(state).labels()
    return gr.update(choices=labels, value=labels[-1] if labels else None)


def open_link(state, request: gr.Request = None) -> tuple:
    """`?neuron=L:I` fills the inspector's neuron box, selects the Compare tab and opens the inspector (its page is
    then served from the cache); `?result=KIND/KEY` shows that stored result above the tabs.
    Returns (message, plot, neuron box, tabs, inspector accordion)."""
    query = dict(getattr(request, "query_params", None) or {})
    neuron, result = query.get("neuron"), query.get("result")
    note, plot, box, tab, opened = "", gr.update(visible=False), gr.update(), gr.skip(), gr.skip()
    if neuron:
        try:
            layer, index = parse_neuron(str(neuron)[:40])
            box, tab, opened = gr.update(value=f"{layer}:{index}"), gr.Tabs(selected="compare"), gr.Accordion(open=True)
            note = f"**Shared link: neuron {layer}:{index}.** Its page opens below, in 4 · Compare → Inspect a neuron."
        except CNLError as exc:
            note = f"*The link's neuron could not be read: {exc}*"
    if result:
        note, plot = shared_result(str(result)[:120])
    return note, plot, box, tab, opened


def shared_result(link: str) -> tuple:
    kind, _, key = link.partition("/")
    result_type = LINK_KINDS.get(kind)
    value = RESULTS.read_key(kind, key, result_type) if result_type else None
    if value is None:
        return (
            f"*The linked result ({link}) is not stored on this server (a link opens results computed here; "
            "the cache may have been cleared).*",
            gr.update(visible=False),
        )
    if isinstance(value, DemoResult):
        return (
            f"### Shared result: the demo\n{value.headline()}\n\n{demo_reading(value)}",
            gr.update(value=charts.demo_chart(value), visible=True),
        )
    lines = "\n".join(f"- {x}" for x in evaluation_readings([value]))
    acc, _ = charts.evaluation_charts([value])
    return f"### Shared result: Intervene on {value.dataset}\n{lines}", gr.update(value=acc, visible=True)


def link_line(kind: str, key: str) -> str:
    """The line under a result: its link for the room."""
    return f"Link for the room: `?result={kind}/{key}` (add it to this page's address)." if key else ""
