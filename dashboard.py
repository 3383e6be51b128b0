"""Capability Neuron Lab: the Gradio dashboard.

Load a model, pick datasets and splits, locate capability neurons (CNL), compare the located
sets, and prove them by zeroing or amplifying. Every computation is a `cnl_core` call; this
file only wires widgets to the library and formats what comes back.

    python dashboard.py            # http://127.0.0.1:7860, the built-in offline model and data
    python dashboard.py --share    # a temporary public link
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import uuid
from pathlib import Path

from cnl_core.paths import cache_root

os.environ.setdefault("GRADIO_TEMP_DIR", str(cache_root() / "gradio"))  # keep every written file under cache/
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from cnl_core import charts, exports  # noqa: E402
from cnl_core.compare import comparison_matrix  # noqa: E402
from cnl_core.datasets import get_dataset, list_datasets  # noqa: E402
from cnl_core.errors import CNLError  # noqa: E402
from cnl_core.evaluate_run import run_evaluate, run_matrix  # noqa: E402
from cnl_core.evaluation import EvalConfig  # noqa: E402
from cnl_core.localize import LocateParams  # noqa: E402
from cnl_core.locate_run import (  # noqa: E402
    load_result, located_sample_ids, neuron_set_from_result, run_locate, split_agreement)
from cnl_core.models import DEFAULT_MODEL, ModelSpec  # noqa: E402
from cnl_core.registry import MODELS  # noqa: E402
from cnl_core.scoring import ScoreConfig  # noqa: E402
from cnl_core.splits import make_splits  # noqa: E402
from cnl_core.uploads import columns_of, dataset_from_records, read_table  # noqa: E402

ASSETS = Path(__file__).parent / "assets"
HEAVY = "model-work"  # all model computations share one queue slot: visitors wait their turn

HELP = {
    "model": "Pick the model whose neurons you want to study. The built-in **SmolLM2-135M** works offline on a "
             "laptop CPU. Any Hugging Face causal LM works by Hub id or local folder; on a GPU choose 8/4-bit or "
             "*auto* to fit big models. A **neuron** is one unit of the FFN activation entering the down projection.",
    "data": "A **capability** is what a whole dataset asks for (maths, sentiment, code). CNL draws **k disjoint "
            "subsamples of n rows** and locates neurons on each: if the capability is localized, the splits "
            "agree. Upload your own CSV/JSONL to test another capability.",
    "locate": "For every sample, each neuron gets a **score** for how much it supports the gold answer "
              "(teacher-forced). A sample **selects** the neurons scoring at least tau x its maximum; a neuron is "
              "**located** when at least a fraction p of the samples select it. Scores are cached on disk, so "
              "moving a slider re-localizes at once.",
    "compare": "The **heatmap** is the paper's Figure 4: layers (rows) by neurons (pooled bins); darker = selected "
               "by more samples. **Overlap** = |A∩B| / min(|A|,|B|), **IoU** = |A∩B| / |A∪B|. The chance level is "
               "what random sets of the same sizes would give: a large gap means the location is not luck.",
    "intervene": "The proof: **zero** the located neurons (accuracy should drop) or **amplify** them (it may rise), "
                 "and compare with a **random control** of the same size per layer. Bars show 95% bootstrap "
                 "intervals. The gold-answer log-likelihood moves even where a small model's accuracy is near 0.",
    "export": "Download everything: located neurons and full parameters as JSON (reload them later), tables as "
              "CSV, charts as PNG/SVG.",
}


# ------------------------------------------------------------------ session state


def new_session() -> dict:
    """One visitor's state: their model choice, runs and results (never shared)."""
    return {"id": uuid.uuid4().hex[:12], "spec": ModelSpec(), "runs": {}, "evals": [], "matrix": None,
            "uploads": [], "cancel": threading.Event()}


def _session(state: dict | None) -> dict:
    return state if state else new_session()


def _model(state: dict):
    return MODELS.get(state["spec"])


def _fail(exc: Exception):
    """Show a library error as a plain message; anything else as a short generic one."""
    if isinstance(exc, CNLError):
        raise gr.Error(str(exc), duration=None)
    raise gr.Error(f"Unexpected error: {type(exc).__name__}: {exc}", duration=None)


def _progress(progress: gr.Progress):
    def update(done: int, total: int, message: str) -> None:
        progress((done, max(total, 1)), desc=message)

    return update


# ------------------------------------------------------------------ model tab


def load_model_ui(name, dtype, device, quant, device_map_auto, trust_remote_code, state):
    state = _session(state)
    spec = ModelSpec(name=(name or DEFAULT_MODEL).strip(), dtype=dtype, device=device, quantization=quant,
                     device_map_auto=bool(device_map_auto), trust_remote_code=bool(trust_remote_code))
    try:
        lm = MODELS.get(spec)
    except Exception as exc:  # noqa: BLE001 - shown to the user
        _fail(exc)
    state["spec"] = spec
    info = lm.info()
    warn = "\n\n**Warning: trust_remote_code is on**: code from the model repository ran." if spec.trust_remote_code else ""
    md = (f"### Loaded: {info['name']}\n| | |\n|---|---|\n| architecture | {info['architecture']} ({info['model_type']}) |\n"
          f"| neurons | **{info['n_layers']} layers x {info['neurons_per_layer']}** = {info['n_neurons']:,} |\n"
          f"| dtype / quantization | {info['dtype']} / {info['quantization']} |\n| device | {info['device']} |\n"
          f"| memory | {info['memory_mb']:,} MB |\n| weights fingerprint | `{info['fingerprint']}` |{warn}")
    return md, state


# ------------------------------------------------------------------ data tab


def dataset_table() -> pd.DataFrame:
    rows = []
    for d in list_datasets():
        ok, why = d.available()
        n = len(d.rows()) if ok and not d.hub else d.expected_rows
        rows.append({"dataset": d.name, "task": d.kind, "rows": n, "available": "yes" if ok else "no",
                     "source": d.source, "what": d.description})
    return pd.DataFrame(rows)


def inspect_upload(file, state):
    state = _session(state)
    if file is None:
        return gr.update(choices=[]), gr.update(choices=[]), pd.DataFrame(), state
    try:
        path = Path(file if isinstance(file, str) else file.name)
        records = read_table(path.read_bytes(), path.name)
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    cols = columns_of(records)
    if not cols:
        raise gr.Error("The file has no columns.")
    state["pending_upload"] = records
    preview = pd.DataFrame(records[:5]).map(lambda v: v[:120] if isinstance(v, str) else v)
    answer_guess = next((c for c in cols if c.lower() in ("answer", "label", "target", "output")), cols[-1])
    return (gr.update(choices=cols, value=cols[0]), gr.update(choices=cols, value=answer_guess), preview, state)


def add_upload(name, prompt_col, answer_col, labels, template, chosen, state):
    state = _session(state)
    records = state.get("pending_upload")
    if not records:
        raise gr.Error("Upload a CSV or JSONL file first.")
    safe_name = "".join(ch for ch in (name or "my-data") if ch.isalnum() or ch in "-_")[:40] or "my-data"
    try:
        spec, report = dataset_from_records(records, f"upload-{safe_name}-{state['id'][:6]}", prompt_col, answer_col,
                                            labels=[x for x in (labels or "").split(",")],
                                            prompt_template=template or "{prompt}")
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    state["uploads"].append(spec.name)
    msg = (f"Added **{spec.name}** ({spec.kind}): {report['rows_used']} rows used of {report['rows_in_file']}; "
           f"{report['missing']} missing a prompt/answer, {report['duplicates']} duplicates, "
           f"{report['unknown_label']} with an unknown label were skipped.")
    choices = [d.name for d in list_datasets() if not d.name.startswith("upload-")] + state["uploads"]
    return msg, gr.update(choices=choices, value=list(chosen or []) + [spec.name]), \
        gr.update(choices=choices), state


def preview_splits(datasets, n, k, seed):
    rows = []
    try:
        for name in datasets or []:
            spec = get_dataset(name)
            by_id = spec.by_id()
            for s_idx, ids in enumerate(make_splits(spec, int(n), int(k), int(seed))):
                for sid in ids[:5]:
                    rows.append({"dataset": name, "split": s_idx, "id": sid,
                                 "prompt": by_id[sid].prompt[:160], "gold": by_id[sid].target[:40]})
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ locate tab


def _params(rule, tau, p, top_k, sigma) -> LocateParams:
    return LocateParams(rule=rule, tau=float(tau), p=float(p), top_k=int(top_k), sigma=float(sigma))


def locate_ui(datasets, n, k, seed, method, ig_steps, rule, tau, p, top_k, sigma, batch_size, state,
              progress=gr.Progress()):
    state = _session(state)
    state["cancel"].clear()
    if not datasets:
        raise gr.Error("Pick at least one dataset on the Data tab.")
    try:
        params = _params(rule, tau, p, top_k, sigma)
        cfg = ScoreConfig(method=method, ig_steps=int(ig_steps))
        lm = _model(state)
        for name in datasets:
            run = run_locate(lm, name, int(n), int(k), int(seed), cfg, params, batch_size=int(batch_size),
                             progress=_progress(progress), cancel=state["cancel"])
            label = f"{lm.spec.name}:{name}"
            state["runs"][label] = {"run": run, "result": run.result()}
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    return (locate_summary(state), state, *compare_outputs(state, None),
            gr.update(choices=list(state["runs"]), value=list(state["runs"])[-1]))


def relocalize_ui(rule, tau, p, top_k, sigma, state):
    """Threshold change: recompute every located set from the in-memory scores (no model call)."""
    state = _session(state)
    try:
        params = _params(rule, tau, p, top_k, sigma)
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    for entry in state["runs"].values():
        if entry["run"] is not None:
            entry["result"] = entry["run"].relocalize(params)
    return (locate_summary(state), state, *compare_outputs(state, None))


def cancel_ui(state):
    if state:
        state["cancel"].set()
    return "Cancelling… finished batches stay cached and are reused next time."


def locate_summary(state: dict) -> str:
    if not state["runs"]:
        return "No located neurons yet: press **Locate neurons**."
    lines = ["| model : dataset | located | % of neurons | split overlap | split IoU | chance IoU | p-value | cache |",
             "|---|---|---|---|---|---|---|---|"]
    for label, entry in state["runs"].items():
        r = entry["result"]
        agree = split_agreement(r)
        worst_p = max((x["p_value"] for x in r.get("pairwise") or []), default=float("nan"))
        cache = r.get("cache", {})
        lines.append(f"| {label} | **{r['n_located']}** | {100 * r['fraction_located']:.3f}% | "
                     f"**{agree['overlap_rate']:.3f}** | **{agree['iou']:.3f}** | {agree['chance_iou']:.5f} | "
                     f"{worst_p:.2g} | {cache.get('reused', 0)} cached / {cache.get('computed', 0)} computed |")
    notes = [n for e in state["runs"].values() for n in e["result"].get("cache", {}).get("notes", [])]
    return "\n".join(lines) + ("\n\n" + "\n".join(f"- note: {n}" for n in notes) if notes else "")


# ------------------------------------------------------------------ compare tab


def _named_sets(state: dict, grid) -> dict:
    sets = {}
    for label, entry in state["runs"].items():
        r = entry["result"]
        if (r["grid"]["n_layers"], r["grid"]["width"]) != grid:
            continue
        sets[f"{label}/all"] = neuron_set_from_result(r)
        for i, split in enumerate(r.get("splits", [])):
            sets[f"{label}/split{i}"] = neuron_set_from_result({"grid": r["grid"], "neurons": split["neurons"]})
    return sets


def compare_outputs(state: dict, selected: str | None):
    """Heatmap, per-layer bars, overlap and IoU matrices, chance table and top neurons."""
    if not state["runs"]:
        empty = pd.DataFrame()
        return None, None, None, None, empty, empty
    label = selected if selected in state["runs"] else list(state["runs"])[-1]
    entry = state["runs"][label]
    r = entry["result"]
    grid = (r["grid"]["n_layers"], r["grid"]["width"])
    if entry["run"] is not None:
        prominence = entry["run"].prominence()
    else:
        prominence = neuron_set_from_result(r).mask().float()
    heat = charts.neuron_heatmap(prominence, title=f"{label}: share of samples selecting each neuron")
    bars = charts.per_layer_bars({lbl: e["result"]["per_layer"] for lbl, e in state["runs"].items()
                                  if (e["result"]["grid"]["n_layers"], e["result"]["grid"]["width"]) == grid})
    mat = comparison_matrix(_named_sets(state, grid))
    overlap = charts.matrix_heatmap(mat["names"], mat["overlap_rate"], "Overlap rate", domain=[0, 1])
    iou = charts.matrix_heatmap(mat["names"], mat["iou"], "IoU", domain=[0, 1])
    chance = pd.DataFrame([{"set A": mat["names"][i], "set B": mat["names"][j],
                            "IoU": round(mat["iou"][i][j], 4), "chance IoU": round(mat["chance_iou"][i][j], 6)}
                           for i in range(len(mat["names"])) for j in range(i + 1, len(mat["names"]))])
    top = exports.neurons_table(r).head(30)
    return heat, bars, overlap, iou, chance, top


def compare_ui(selected, state):
    return compare_outputs(_session(state), selected)


# ------------------------------------------------------------------ intervene tab


def _eval_cfg(fewshot, max_new_tokens) -> EvalConfig:
    return EvalConfig(num_fewshot=None if fewshot is None or int(fewshot) < 0 else int(fewshot),
                      max_new_tokens=int(max_new_tokens))


def intervene_ui(label, mode, factor, positions, targets, n, seed, draws, fewshot, max_new_tokens, state,
                 progress=gr.Progress()):
    state = _session(state)
    state["cancel"].clear()
    if label not in state["runs"]:
        raise gr.Error("Locate neurons first (Locate tab), or reload a result (Export tab).")
    if not targets:
        raise gr.Error("Pick at least one dataset to test.")
    try:
        lm = _model(state)
        r = state["runs"][label]["result"]
        neurons = neuron_set_from_result(r, lm.grid)
        cfg = _eval_cfg(fewshot, max_new_tokens)
        results = []
        for target in targets:
            located = located_sample_ids(r) if target == r["dataset"] else []
            results.append(run_evaluate(lm, target, int(n), int(seed), neurons, mode=mode, factor=float(factor),
                                        positions=positions, control_draws=int(draws), located_ids=located, cfg=cfg,
                                        progress=_progress(progress), cancel=state["cancel"]))
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    for res in results:
        res["located_on"] = label
    state["evals"] = results
    return (*evaluation_outputs(results), state)


def evaluation_outputs(results: list[dict]):
    acc = [charts.evaluation_bars(r, "accuracy") for r in results if r["baseline"].get("accuracy") is not None]
    ll = [charts.evaluation_bars(r, "gold_loglik") for r in results]
    import altair as alt

    acc_chart = alt.hconcat(*acc) if acc else None
    ll_chart = alt.hconcat(*ll) if ll else None
    return acc_chart, ll_chart, exports.evaluation_table(results).round(4), exports.examples_table(results)


def matrix_ui(mode, factor, targets, n, seed, fewshot, max_new_tokens, metric, state, progress=gr.Progress()):
    state = _session(state)
    state["cancel"].clear()
    if not state["runs"] or not targets:
        raise gr.Error("Locate neurons on at least one dataset and pick datasets to test.")
    try:
        lm = _model(state)
        sources = {}
        for label, entry in state["runs"].items():
            r = entry["result"]
            if (r["grid"]["n_layers"], r["grid"]["width"]) == (lm.grid.n_layers, lm.grid.width):
                sources[r["dataset"]] = (neuron_set_from_result(r, lm.grid), located_sample_ids(r))
        res = run_matrix(lm, sources, list(targets), int(n), int(seed), mode=mode, factor=float(factor),
                         cfg=_eval_cfg(fewshot, max_new_tokens), progress=_progress(progress), cancel=state["cancel"])
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    state["matrix"] = res
    return charts.cross_matrix_heatmap(res, metric), state


# ------------------------------------------------------------------ export tab


def export_ui(state):
    """Write every result of this session under cache/exports/<session>/ and offer them for download."""
    state = _session(state)
    if not state["runs"] and not state["evals"]:
        raise gr.Error("Nothing to export yet.")
    folder = cache_root() / "exports" / state["id"]
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for label, entry in state["runs"].items():
        stem = label.replace(":", "_").replace("/", "_")
        path = folder / f"located_{stem}.json"
        path.write_text(json.dumps(entry["result"], indent=2))
        files.append(path)
        files.append(Path(exports.to_safe_csv(exports.pairwise_table(entry["result"]), str(folder / f"splits_{stem}.csv"))))
        files.append(Path(exports.to_safe_csv(exports.neurons_table(entry["result"]), str(folder / f"top_neurons_{stem}.csv"))))
        heat = compare_outputs(state, label)[0]
        for fmt in ("png", "svg"):
            files.append(Path(charts.save_chart(heat, str(folder / f"heatmap_{stem}.{fmt}"), fmt)))
    if state["evals"]:
        files.append(Path(exports.to_safe_csv(exports.evaluation_table(state["evals"]), str(folder / "evaluation.csv"))))
        files.append(Path(exports.to_safe_csv(exports.examples_table(state["evals"]), str(folder / "examples.csv"))))
        (folder / "evaluation.json").write_text(json.dumps(state["evals"], indent=2))
        files.append(folder / "evaluation.json")
        acc_chart, ll_chart, _, _ = evaluation_outputs(state["evals"])
        for fmt in ("png", "svg"):
            files.append(Path(charts.save_chart(ll_chart, str(folder / f"evaluation_loglik.{fmt}"), fmt)))
    if state["matrix"]:
        (folder / "cross_dataset_matrix.json").write_text(json.dumps(state["matrix"], indent=2))
        files.append(folder / "cross_dataset_matrix.json")
    return [str(f) for f in files]


def reload_ui(file, state):
    """Re-load a located-neurons JSON (from the CLI or an earlier export) into this session."""
    state = _session(state)
    if file is None:
        return "", state, gr.update(), gr.update()
    try:
        path = Path(file if isinstance(file, str) else file.name)
        if path.stat().st_size > 50 * 2**20:
            raise CNLError("The file is over the 50 MiB limit.")
        data = load_result(path)  # checks it is JSON with a grid and neurons
        neurons = neuron_set_from_result(data)  # checks every [layer, index] fits the grid
        for key in ("dataset", "model"):
            if not isinstance(data.get(key), str):
                raise CNLError(f"The result file has no '{key}'.")
    except Exception as exc:  # noqa: BLE001
        _fail(exc)
    data.setdefault("per_layer", neurons.per_layer_counts())
    data.setdefault("top_neurons", [])
    data.setdefault("pairwise", [])
    data.setdefault("n_located", len(neurons))
    data.setdefault("fraction_located", len(neurons) / neurons.grid.total)
    label = f"{data['model']}:{data['dataset']} (reloaded)"
    state["runs"][label] = {"run": None, "result": data}
    choices = list(state["runs"])
    return (f"Reloaded **{label}**: {data['n_located']} neurons.", state,
            gr.update(choices=choices, value=label), gr.update(choices=choices, value=label))


# ------------------------------------------------------------------ layout


def build_app() -> gr.Blocks:
    all_names = [d.name for d in list_datasets()]
    with gr.Blocks(title="Capability Neuron Lab") as demo:
        state = gr.State(None)
        gr.Markdown("# Capability Neuron Lab\nFind the FFN neurons a language model uses for a whole capability "
                    "— and prove it by switching them off or up. *Commonality Neuron Localization (CNL), "
                    "Huang et al., ICLR 2025.*")
        with gr.Tab("1 · Model"):
            gr.Markdown(HELP["model"])
            with gr.Row():
                name = gr.Textbox(DEFAULT_MODEL, label="Model (built-in name, Hub id or local folder)", scale=3)
                dtype = gr.Dropdown(["auto", "float32", "bfloat16", "float16"], value="auto", label="dtype")
                device = gr.Dropdown(["auto", "cpu", "cuda"], value="auto", label="device")
                quant = gr.Dropdown(["none", "8bit", "4bit", "auto"], value="none", label="quantization (GPU)")
            with gr.Row():
                dmap = gr.Checkbox(False, label="device_map='auto' (spread a big model over GPUs/CPU)")
                trust = gr.Checkbox(False, label="trust_remote_code (runs the repo's code: only if you trust it)")
                load_btn = gr.Button("Load model", variant="primary")
            model_info = gr.Markdown("Loading the built-in model…", elem_id="model-info")

        with gr.Tab("2 · Data"):
            gr.Markdown(HELP["data"])
            datasets = gr.CheckboxGroup([d.name for d in list_datasets()], value=["gsm8k"], label="Datasets")
            with gr.Row():
                n = gr.Number(10, precision=0, minimum=1, maximum=5000, label="n per split")
                k = gr.Number(2, precision=0, minimum=1, maximum=20, label="splits (k)")
                seed = gr.Number(0, precision=0, label="seed")
                preview_btn = gr.Button("Show chosen rows")
            split_rows = gr.Dataframe(label="First rows of each split", wrap=True, max_height=300, elem_id="split-rows")
            with gr.Accordion("All datasets", open=False):
                gr.Dataframe(dataset_table(), wrap=True)
            with gr.Accordion("Upload your own CSV / JSONL", open=False):
                upload = gr.File(label="CSV or JSONL file (max 50 MiB)", file_types=[".csv", ".jsonl", ".json", ".tsv"],
                                 elem_id="upload-file")
                with gr.Row():
                    prompt_col = gr.Dropdown([], label="prompt column")
                    answer_col = gr.Dropdown([], label="answer column")
                    labels = gr.Textbox("", label="labels (comma-separated, for classification)")
                with gr.Row():
                    up_name = gr.Textbox("my-data", label="name")
                    template = gr.Textbox("{prompt}", label="prompt template (must contain {prompt})")
                    add_btn = gr.Button("Add dataset")
                upload_preview = gr.Dataframe(label="Preview", wrap=True, max_height=220)
                upload_msg = gr.Markdown()

        with gr.Tab("3 · Locate"):
            gr.Markdown(HELP["locate"])
            with gr.Row():
                method = gr.Radio(["grad_x_act", "integrated_gradients", "activation"], value="grad_x_act",
                                  label="score method (integrated gradients: the paper's, slow on CPU)")
                ig_steps = gr.Slider(1, 50, 20, step=1, label="IG steps m")
                batch = gr.Slider(1, 32, 8, step=1, label="batch size")
            with gr.Row():
                rule = gr.Radio(["relative", "topk", "zscore"], value="relative", label="per-sample selection")
                tau = gr.Slider(0.01, 1.0, 0.2, step=0.01, label="tau (x sample max)")
                p = gr.Slider(0.05, 1.0, 0.5, step=0.05, label="p (share of samples)")
                top_k = gr.Number(100, precision=0, minimum=1, label="top-k")
                sigma = gr.Number(3.0, minimum=0, label="z-score sigma")
            with gr.Row():
                locate_btn = gr.Button("Locate neurons", variant="primary", elem_id="locate-btn")
                cancel_btn = gr.Button("Cancel", variant="stop", elem_id="locate-cancel")
            locate_md = gr.Markdown("No located neurons yet: press **Locate neurons**.", elem_id="locate-summary")

        with gr.Tab("4 · Compare"):
            gr.Markdown(HELP["compare"])
            run_pick = gr.Dropdown([], label="Located set for the heatmap")
            heatmap = gr.Plot(label="Neuron heatmap", show_label=False, elem_id="heatmap")
            layer_bars = gr.Plot(label="Per layer", show_label=False)
            with gr.Row():
                overlap_plot = gr.Plot(label="Overlap rate", show_label=False)
                iou_plot = gr.Plot(label="IoU", show_label=False)
            chance_table = gr.Dataframe(label="IoU against chance", wrap=True)
            top_table = gr.Dataframe(label="Top located neurons (mean score)")

        with gr.Tab("5 · Intervene"):
            gr.Markdown(HELP["intervene"])
            with gr.Row():
                iv_run = gr.Dropdown([], label="Neurons located on")
                mode = gr.Radio(["zero", "amplify"], value="zero", label="intervention")
                factor = gr.Slider(0.0, 10.0, 2.0, step=0.5, label="amplify factor")
                positions = gr.Radio(["all", "answer"], value="all", label="token positions")
            targets = gr.CheckboxGroup(all_names, value=["gsm8k"], label="Test on")
            with gr.Row():
                iv_n = gr.Number(8, precision=0, minimum=1, maximum=2000, label="n test samples")
                iv_seed = gr.Number(0, precision=0, label="seed")
                draws = gr.Number(2, precision=0, minimum=0, maximum=20, label="random-control draws")
                fewshot = gr.Number(-1, precision=0, minimum=-1, maximum=16, label="few-shot (-1: task default)")
                max_new = gr.Number(96, precision=0, minimum=1, maximum=1024, label="max new tokens")
            with gr.Row():
                iv_btn = gr.Button("Run intervention", variant="primary", elem_id="intervene-btn")
                iv_cancel = gr.Button("Cancel", variant="stop")
            with gr.Row():
                acc_plot = gr.Plot(label="Accuracy", show_label=False)
                ll_plot = gr.Plot(label="Gold-answer log-likelihood per token", show_label=False)
            eval_table = gr.Dataframe(label="Before / after", wrap=True, elem_id="eval-table")
            examples = gr.Dataframe(label="Example generations, before and after", wrap=True)
            with gr.Accordion("Cross-dataset matrix (paper Figure 5)", open=False):
                metric = gr.Radio(["delta_gold_loglik", "delta_accuracy"], value="delta_gold_loglik", label="cell")
                matrix_btn = gr.Button("Compute matrix: every located set x every test dataset")
                matrix_plot = gr.Plot(label="Change against the unmodified model", show_label=False)

        with gr.Tab("6 · Export"):
            gr.Markdown(HELP["export"])
            export_btn = gr.Button("Prepare downloads", variant="primary")
            export_files = gr.File(label="Files", file_count="multiple")
            reload_file = gr.File(label="Re-load a located-neurons JSON", file_types=[".json"])
            reload_msg = gr.Markdown()

        # -------------------------------------------------------------- wiring
        load_btn.click(load_model_ui, [name, dtype, device, quant, dmap, trust, state], [model_info, state],
                       concurrency_id=HEAVY, concurrency_limit=1)
        preview_btn.click(preview_splits, [datasets, n, k, seed], split_rows)
        upload.upload(inspect_upload, [upload, state], [prompt_col, answer_col, upload_preview, state])
        add_btn.click(add_upload, [up_name, prompt_col, answer_col, labels, template, datasets, state],
                      [upload_msg, datasets, targets, state])
        compare_outs = [heatmap, layer_bars, overlap_plot, iou_plot, chance_table, top_table]
        locate_ev = locate_btn.click(
            locate_ui, [datasets, n, k, seed, method, ig_steps, rule, tau, p, top_k, sigma, batch, state],
            [locate_md, state, *compare_outs, run_pick], concurrency_id=HEAVY, concurrency_limit=1)
        locate_ev.then(lambda s: gr.update(choices=list(_session(s)["runs"]), value=list(_session(s)["runs"])[-1]
                                           if _session(s)["runs"] else None), state, iv_run)
        cancel_btn.click(cancel_ui, state, locate_md, cancels=[locate_ev], queue=False)
        for slider in (tau, p):
            slider.release(relocalize_ui, [rule, tau, p, top_k, sigma, state], [locate_md, state, *compare_outs])
        for control in (rule, top_k, sigma):
            control.change(relocalize_ui, [rule, tau, p, top_k, sigma, state], [locate_md, state, *compare_outs])
        run_pick.change(compare_ui, [run_pick, state], compare_outs)
        iv_ev = iv_btn.click(intervene_ui, [iv_run, mode, factor, positions, targets, iv_n, iv_seed, draws, fewshot,
                                            max_new, state], [acc_plot, ll_plot, eval_table, examples, state],
                             concurrency_id=HEAVY, concurrency_limit=1)
        mx_ev = matrix_btn.click(matrix_ui, [mode, factor, targets, iv_n, iv_seed, fewshot, max_new, metric, state],
                                 [matrix_plot, state], concurrency_id=HEAVY, concurrency_limit=1)
        iv_cancel.click(cancel_ui, state, None, cancels=[iv_ev, mx_ev], queue=False)
        export_btn.click(export_ui, state, export_files)
        reload_file.upload(reload_ui, [reload_file, state], [reload_msg, state, run_pick, iv_run])
        demo.load(new_session, None, state).then(  # show the built-in model's grid without any input
            load_model_ui, [name, dtype, device, quant, dmap, trust, state], [model_info, state],
            concurrency_id=HEAVY, concurrency_limit=1)
    demo.queue(default_concurrency_limit=4, max_size=64)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description="Capability Neuron Lab dashboard")
    on_spaces = bool(os.environ.get("SPACE_ID"))
    parser.add_argument("--host", default="0.0.0.0" if on_spaces else "127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)))
    parser.add_argument("--share", action="store_true", help="create a temporary public gradio.live link")
    args = parser.parse_args()
    build_app().launch(server_name=args.host, server_port=args.port, share=args.share,
                       theme=gr.themes.Soft(), css_paths=[ASSETS / "style.css"], footer_links=["api"],
                       max_file_size="50mb")


if __name__ == "__main__":
    main()
