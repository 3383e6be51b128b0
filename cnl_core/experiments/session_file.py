"""A visitor's work as one JSON document: located sets and evaluations, saved and restored (never pickled).

Why: a workshop student's refresh wiped their located sets and results, with no way back. The dashboard keeps
this document in the browser's storage (restored on the next page load) and offers it as one file to download
and upload again. It holds typed results in their documented file forms (kind "cnl.session"): restoring reads
every one through the same checked codec as a result file, so a hand-edited or hostile document is refused with
a sentence naming the field, never run. Scores stay in the score cache: a restored located set is re-loaded
like a result file (its neurons and settings, without re-thresholding).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ResultFileError
from ..serialize import at, from_data, to_data
from .eval_results import EvalResult
from .json_io import MAX_DEPTH, dumps, nesting_depth
from .locate_result import LocateResult

KIND = "cnl.session"
VERSION = 1
MAX_SESSION_CHARS = 4 * 2**20  # a browser's storage holds about 5 MB per site
MAX_SETS, MAX_RUNS = 32, 64


@dataclass
class SessionFile:
    """What a session brings back: located sets by label, and every Intervene run (oldest first)."""

    located: dict[str, LocateResult] = field(default_factory=dict)
    history: list[list[EvalResult]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # the visitor's boxes, by name (plain values only)


def session_json(
    located: Mapping[str, LocateResult],
    history: Sequence[Sequence[EvalResult]],
    settings: Mapping[str, Any] | None = None,
) -> dict:
    """The document: the newest sets and runs that fit MAX_SESSION_CHARS (the oldest runs go first)."""
    doc: dict[str, Any] = {
        "kind": KIND,
        "version": VERSION,
        "located": [{"label": label, "result": to_data(r)} for label, r in list(located.items())[-MAX_SETS:]],
        "history": [[to_data(e) for e in run] for run in list(history)[-MAX_RUNS:]],
        "settings": _plain(dict(settings or {})),
    }
    while len(dumps(doc)) > MAX_SESSION_CHARS and (doc["history"] or doc["located"]):
        (doc["history"] or doc["located"]).pop(0)
    return doc


def read_session(data: Any, source: str = "session") -> SessionFile:
    """The session a document holds, every result checked; ResultFileError naming the source and the field."""
    if isinstance(data, str):
        if len(data) > MAX_SESSION_CHARS:
            raise ResultFileError(f"{source}: over {MAX_SESSION_CHARS // 2**20} MiB, larger than any saved session.")
        try:
            data = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ResultFileError(f"{source}: not JSON ({str(exc)[:80]}).") from exc
    elif isinstance(data, dict) and len(dumps(data)) > MAX_SESSION_CHARS:
        raise ResultFileError(f"{source}: over {MAX_SESSION_CHARS // 2**20} MiB, larger than any saved session.")
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ResultFileError(f"{source}: not a saved session (its kind must be '{KIND}').")
    if nesting_depth(data) > MAX_DEPTH:
        raise ResultFileError(f"{source}: nested too deeply to be a saved session.")
    located, history = data.get("located", []), data.get("history", [])
    if (
        not isinstance(located, list)
        or not isinstance(history, list)
        or len(located) > MAX_SETS
        or len(history) > MAX_RUNS
    ):
        raise ResultFileError(
            f"{source}: 'located' and 'history' must be lists of at most {MAX_SETS} sets and {MAX_RUNS} runs."
        )
    out = SessionFile(settings=_plain(data.get("settings") or {}))
    for i, item in enumerate(located):
        where = at(at(source, "located"), i)
        if not isinstance(item, dict) or not isinstance(item.get("label"), str) or len(item["label"]) > 200:
            raise ResultFileError(f"{where}: needs a 'label' (text) and a 'result'.")
        out.located[item["label"]] = from_data(LocateResult, item.get("result"), at(where, "result"))
    for i, run in enumerate(history):
        where = at(at(source, "history"), i)
        if not isinstance(run, list):
            raise ResultFileError(f"{where}: must be a list of evaluations.")
        out.history.append([from_data(EvalResult, e, at(where, j)) for j, e in enumerate(run)])
    return out


def _plain(settings: Any) -> dict[str, Any]:
    """Settings as plain values only (text, numbers, true/false, lists of those), at most 100 of them."""
    if not isinstance(settings, dict):
        return {}
    ok = (str, int, float, bool, type(None))
    return {
        str(k)[:100]: v
        for k, v in list(settings.items())[:100]
        if isinstance(v, ok) or isinstance(v, list) and all(isinstance(x, ok) for x in v[:1000])
    }
