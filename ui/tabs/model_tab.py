"""Tab 1: load a model (built-in offline default, a Hub id or a folder; dtype, quantization, device map)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from cnl_core.model.loading import ModelSpec
from cnl_core.options import DEFAULT_MODEL, DEVICES, DTYPES, QUANTIZATIONS

from ..errors import shows_errors
from ..session import session

HELP = ("Pick the model whose neurons you want to study. The built-in **SmolLM2-135M** works offline on a laptop "
        "CPU. Any Hugging Face causal LM works by Hub id or local folder; on a GPU choose 8/4-bit or *auto* to fit "
        "big models. A **neuron** is one unit of the FFN activation entering the down projection.\n\n"
        "*Next: **2 · Data**, pick the capability to study.*")
_SPEC = ModelSpec()


def build() -> SimpleNamespace:
    gr.Markdown(HELP)
    with gr.Row():
        name = gr.Textbox(DEFAULT_MODEL, label="Model (built-in name, Hub id or local folder)", scale=3)
        dtype = gr.Dropdown(list(DTYPES), value=_SPEC.dtype, label="dtype")
        device = gr.Dropdown(list(DEVICES), value=_SPEC.device, label="device")
        quant = gr.Dropdown(list(QUANTIZATIONS), value=_SPEC.quantization, label="quantization (GPU)")
    with gr.Row():
        dmap = gr.Checkbox(_SPEC.device_map_auto, label="device_map='auto' (spread a big model over GPUs/CPU)")
        trust = gr.Checkbox(_SPEC.trust_remote_code,
                            label="trust_remote_code (runs the repo's code: only if you trust it)")
        load_btn = gr.Button("Load model", variant="primary")
    info = gr.Markdown("Loading the built-in model…", elem_id="model-info")
    return SimpleNamespace(inputs=[name, dtype, device, quant, dmap, trust], load_btn=load_btn, info=info)


@shows_errors
def load_model_ui(name, dtype, device, quant, device_map_auto, trust_remote_code, state):
    state = session(state)
    spec = ModelSpec(name=(name or DEFAULT_MODEL).strip(), dtype=dtype, device=device, quantization=quant,
                     device_map_auto=bool(device_map_auto), trust_remote_code=bool(trust_remote_code))
    from cnl_core.model.model_cache import MODELS

    info = MODELS.get(spec).info()
    state.spec = spec
    warn = "\n\n**Warning: trust_remote_code is on**: code from the model repository ran." if spec.trust_remote_code else ""
    md = (f"### Loaded: {info['name']}\n| | |\n|---|---|\n| architecture | {info['architecture']} ({info['model_type']}) |\n"
          f"| neurons | **{info['n_layers']} layers x {info['neurons_per_layer']}** = {info['n_neurons']:,} |\n"
          f"| dtype / quantization | {info['dtype']} / {info['quantization']} |\n| device | {info['device']} |\n"
          f"| memory | {info['memory_mb']:,} MB |\n| weights fingerprint | `{info['fingerprint']}` |{warn}")
    return md, state
