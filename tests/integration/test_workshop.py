"""Many visitors, one machine (issue #26), on the real built-in model: identical work is computed once. Visitors
pressing the demo at once share one run, a later visitor gets the stored result without the model, and an
Intervene with the same model, data, neurons and settings is served to a second visitor under their own label."""

import threading
from dataclasses import replace

from cnl_core.experiments import requests, requests_studies
from cnl_core.serialize import to_data
from tests.ui_calls import locate_in, quiet
from ui.session import new_session
from ui.tabs import demo_panel, export_tab, intervene_tab


def counting(monkeypatch, module, name):
    calls, real = [], getattr(module, name)

    def wrapped(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
    return calls


def test_the_demo_is_computed_once_for_everyone(lm, score_cache, monkeypatch):
    # The demo's own preset, made small (what is shared does not depend on its size); the browser tests run it whole.
    monkeypatch.setattr(requests_studies, "DEMO", replace(requests_studies.DEMO, n=3, eval_n=6, control_draws=1))
    runs = counting(monkeypatch, requests_studies, "run_demo")  # what DemoRequest.run calls
    texts = []
    visitors = [
        threading.Thread(
            target=lambda: texts.append(demo_panel.demo_ui(demo_panel.SCORED[0], new_session(), progress=quiet)[0])
        )
        for _ in range(3)
    ]
    for v in visitors:
        v.start()
    for v in visitors:
        v.join(600)
    assert len(runs) == 1 and len(texts) == 3
    assert sum("Took" in t for t in texts) == 1 and sum("Another visitor was running" in t for t in texts) == 2
    later = demo_panel.demo_ui(demo_panel.SCORED[0], new_session(), progress=quiet)[0]
    assert "Served at once" in later and len(runs) == 1
    assert later.split("\n")[1] == texts[0].split("\n")[1]  # the same headline: the same numbers


def test_an_identical_intervene_is_served_under_each_visitors_own_label(lm, score_cache, monkeypatch):
    first = new_session()
    locate_in(first, ["add1"], 6, batch_size=8)
    located = next(f for f in export_tab.export_ui(first) if f.endswith(".json"))
    second = new_session()
    export_tab.reload_ui(located, second)
    runs = counting(monkeypatch, requests, "run_evaluate")  # what EvaluateRequest.run calls
    args = ("zero", 2.0, "all", ["add1"], 8, 0, 1, -1, 0, False)
    *_, first = intervene_tab.intervene_ui("smollm2-135m:add1", *args, first, progress=quiet)
    *_, second = intervene_tab.intervene_ui("smollm2-135m:add1 (reloaded)", *args, second, progress=quiet)
    assert len(runs) == 1  # the second visitor's came from the store
    a, b = first.history[-1][0], second.history[-1][0]
    assert to_data(a)["baseline"] == to_data(b)["baseline"] and a.intervened.accuracy == b.intervened.accuracy
    assert (a.located_on, b.located_on) == ("smollm2-135m:add1", "smollm2-135m:add1 (reloaded)")
