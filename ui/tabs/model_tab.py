"""Tab 1: load a model (built-in offline default, a Hub id or a folder; dtype, quantization, device map)."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr

from cnl_core import ModelSpec, memory_plan, shared_mode
from cnl_core import fields as F
from cnl_core.errors import CNLError
from cnl_core.options import DEFAULT_MODEL, DEVICES, DTYPES, QUANTIZATION_NOTE, QUANTIZATIONS

from ..errors import shows_errors
from ..session import session

HELP = (
    "Pick the model whose neurons you want to study. The built-in **SmolLM2-135M** works offline on a laptop "
    "CPU. Any Hugging Face causal LM works by Hub id or local folder; choose 8/4-bit or *auto* (the lightest "
    "precision the memory estimate fits in; CPU offload on a GPU when even 4-bit does not fit) for big models, "
    f"on a GPU or a CPU: {QUANTIZATION_NOTE}. A **neuron** is one unit of the FFN activation entering the down "
    "projection.\n\n"
    "*Next: **2 · Data**, pick the capability to study.*"
)
_SPEC = ModelSpec()


def build() -> SimpleNamespace:
    gr.Markdown(HELP)
    policy = shared_mode.current()
    with gr.Row():
        name = gr.Textbox(
            DEFAULT_MODEL,
            label="Model (built-in name, Hub id or local folder)",
            scale=3,
            max_length=F.MODEL_NAME.max_chars,
            info=_allowed(policy),
        )
        dtype = gr.Dropdown(list(DTYPES), value=_SPEC.dtype, label="dtype")
        device = gr.Dropdown(list(DEVICES), value=_SPEC.device, label="device")
        quant = gr.Dropdown(
            list(QUANTIZATIONS),
            value=_SPEC.quantization,
            label="quantization (saves memory, not time)",
            info="8-bit / nf4 via bitsandbytes, on a GPU or a CPU; auto: only if needed",
        )
    with gr.Row():
        dmap = gr.Checkbox(_SPEC.device_map_auto, label="device_map='auto' (spread a big model over GPUs/CPU)")
        trust = gr.Checkbox(
            _SPEC.trust_remote_code,
            visible=not policy.shared,
            interactive=not policy.shared,
            label="trust_remote_code (runs the repo's code: only if you trust it)",
        )
        load_btn = gr.Button("Load model", variant="primary")
    estimate = gr.Markdown(elem_id="memory-estimate")
    info = gr.Markdown("Loading the built-in model…", elem_id="model-info")
    return SimpleNamespace(
        name=name,
        dtype=dtype,
        device=device,
        quant=quant,
        device_map_auto=dmap,
        trust_remote_code=trust,
        load_btn=load_btn,
        info=info,
        estimate=estimate,
    )


def _allowed(policy: shared_mode.Policy) -> str | None:
    """What the model box accepts on a shared dashboard (None locally: anything)."""
    if not policy.shared:
        return None
    hub = ", ".join(policy.allowed_models) if policy.allowed_models else "any Hub id with safetensors weights"
    folders = f"; folders under {', '.join(map(str, policy.allowed_paths))}" if policy.allowed_paths else ""
    return f"Shared dashboard: {DEFAULT_MODEL}, {hub}{folders}. trust_remote_code stays off."


def estimate_ui(name, dtype, device, quant, device_map_auto, trust_remote_code) -> str:
    """The memory estimate of the chosen settings, from the config alone (before any weight loads)."""
    try:
        plan = memory_plan(ModelSpec.from_inputs(name, dtype, device, quant, device_map_auto, trust_remote_code))
    except CNLError as exc:  # shown in place: a half-typed name is not worth a pop-up
        return f"**Memory estimate:** {exc}"
    offload = " — layers that do not fit the GPU wait in RAM (CPU offload)" if plan.offload else ""
    return f"**Memory estimate** (before loading): {plan.estimate.describe()}{offload}"


@shows_errors
def load_model_ui(name, dtype, device, quant, device_map_auto, trust_remote_code, state):
    state = session(state)
    spec = ModelSpec.from_inputs(name, dtype, device, quant, device_map_auto, trust_remote_code)
    from cnl_core import MODELS

    lm = MODELS.get(spec)
    info = lm.info()
    estimate = lm.plan.estimate.describe() if lm.plan else "n/a"
    state.spec = spec
    warn = (
        "\n\n**Warning: trust_remote_code is on**: code from the model repository ran."
        if spec.trust_remote_code
        else ""
    )
    md = (
        f"### Loaded: {info['name']}\n| | |\n|---|---|\n"
        f"| architecture | {info['architecture']} ({info['model_type']}) |\n"
        f"| neurons | **{info['n_layers']} layers x {info['neurons_per_layer']}** = {info['n_neurons']:,} |\n"
        f"| dtype / quantization | {info['dtype']} / {info['quantization']} |\n| device | {info['device']} |\n"
        f"| memory | {info['memory_mb']:,} MB |\n"
        f"| memory estimate | {estimate} |\n| weights fingerprint | `{info['fingerprint']}` |{warn}"
    )
    # the line above the table shows the same estimate (free memory read once, at load): one figure, not two
    return md, f"**Memory estimate** (when loaded): {estimate}", state
