"""What the benchmark figures share: the models and samples they measure on, best-of timing, the verdict column.

The models: the built-in one on a CPU, a random-weight model of Llama-2-7B's shape on a GPU (speed does not
depend on the weights); the samples: built-in datasets, or their first rows carried to a machine without the data
packages (CNL_BENCH_SAMPLES).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def _best(fn, repeat: int = 3) -> float:
    """Best wall time of `repeat` runs after one warm-up: the least noisy figure on a shared machine."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _model(gpu: bool, quant: str = "none"):
    from cnl_core.model.loading import load_model

    if not gpu:
        return load_model("smollm2-135m")
    return _random_7b(quant)


def _random_7b(quant: str, dtype: torch.dtype = torch.bfloat16):
    """A random-weight model of Llama-2-7B's shape (speed does not depend on the weights)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from cnl_core.model.architectures import FFNAccess
    from cnl_core.model.loading import LoadedModel, ModelSpec, weight_fingerprint

    tok = AutoTokenizer.from_pretrained(str(_tokenizer_folder()))
    tok.pad_token = tok.eos_token
    # Llama-2-7B's shape, with the vocabulary of the tokenizer at hand (49,152 rows instead of 32,000).
    config = LlamaConfig(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        vocab_size=len(tok),
        max_position_embeddings=4096,
    )
    torch.manual_seed(0)  # the same weights in every process: the memory figure's runs share one cache entry
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    if quant == "4bit":
        from transformers import BitsAndBytesConfig

        tmp = Path(os.environ.get("CNL_CACHE_DIR_BENCH", "/tmp")) / "rand7b"
        model.save_pretrained(tmp)
        del model
        torch.cuda.empty_cache()
        model = AutoModelForCausalLM.from_pretrained(
            tmp,
            quantization_config=BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
            ),
            device_map={"": 0},
            use_kernels=False,
        )
    model.requires_grad_(False)
    return LoadedModel(
        ModelSpec("random-llama2-7b"),
        model,
        tok,
        "llama",
        FFNAccess(model, "llama"),
        str(dtype).removeprefix("torch."),
        quant,
        weight_fingerprint(model),
    )


def _tokenizer_folder() -> Path:
    """The built-in model's tokenizer: from CNL_BENCH_TOKENIZER where the model itself is absent
    (a lent GPU machine; scripts/gpu_bench_pack.sh prepares the folder), else the built-in folder."""
    carried = os.environ.get("CNL_BENCH_TOKENIZER")
    return Path(carried) if carried else _smol_folder()


def _builtin_missing() -> str | None:
    """Why the built-in model cannot load here (None: it can)."""
    from cnl_core.errors import ModelLoadError

    try:
        _smol_folder()
    except ModelLoadError as exc:
        return str(exc)
    return None


def _smol_folder() -> Path:
    from cnl_core.model.loading import _builtin_folder

    return _builtin_folder("smollm2-135m")


def _dataset(name: str):
    """A built-in dataset, or its first rows carried to a machine without the data packages
    (CNL_BENCH_SAMPLES: a folder of <name>.jsonl written by scripts/gpu_bench_pack.sh)."""
    from cnl_core.data.samples import DatasetSpec, Sample, get_dataset, register_dataset

    carried = os.environ.get("CNL_BENCH_SAMPLES")
    if not carried:
        return get_dataset(name)
    rows = [Sample(**json.loads(line)) for line in (Path(carried) / f"{name}.jsonl").read_text().splitlines()]
    base = get_dataset(name)
    return register_dataset(DatasetSpec(name, base.description, "carried", base.kind, base.prompt_format, lambda: rows))


def _samples(n: int, dataset: str = "gsm8k"):
    return _dataset(dataset).rows()[:n]
