"""The `finetune` experiment: train only the located neurons, against training as many random neurons."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from ..data.samples import get_dataset
from ..data.splits import draw_disjoint
from ..errors import ParameterError
from ..evaluate.accuracy import EvalConfig, evaluate_samples
from ..evaluate.controls import control_seed, random_like
from ..evaluate.finetune import finetuned
from ..evaluate.stats import compared, summarize
from ..model.loading import LoadedModel
from ..model.neurons import NeuronSet
from ..options import DEFAULTS
from ..progress import Progress, report
from ..provenance import stamp
from .eval_results import FinetuneArm, FinetuneResult
from .evaluate import eval_samples


def run_finetune(
    lm: LoadedModel,
    dataset: str,
    neurons: NeuronSet,
    train_ids: Sequence[str] | None,
    n: int,
    seed: int = 0,
    *,
    n_train: int = DEFAULTS.finetune_train_n,
    steps: int = DEFAULTS.finetune_steps,
    lr: float = DEFAULTS.finetune_lr,
    cfg: EvalConfig | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> FinetuneResult:
    """Evaluate after fine-tuning only the located neurons, against fine-tuning as many random neurons.

    train_ids (e.g. the samples the neurons were located on) must belong to `dataset`; without them,
    n_train training samples are drawn from it. Evaluation samples avoid the training samples.
    """
    cfg = cfg or EvalConfig()
    spec = get_dataset(dataset)
    rows = spec.by_id()
    if train_ids:
        foreign = [i for i in train_ids if i not in rows]
        if foreign:
            raise ParameterError(f"Training samples must come from '{dataset}' (got e.g. {foreign[0]}).")
    else:
        (train_ids,) = draw_disjoint(list(rows), [n_train], seed + 4243)
    _, samples, shots = eval_samples(dataset, n, cfg, seed, train_ids)
    train = [rows[i] for i in train_ids]
    base = evaluate_samples(lm, spec, samples, shots, cfg, cancel=cancel)
    arms = {}
    pairs = (("located", neurons), ("random", random_like(neurons, control_seed(seed, purpose="finetune"), neurons)))
    for step, (name, chosen) in enumerate(pairs):
        with finetuned(lm, chosen, train, steps=steps, lr=lr, cancel=cancel) as losses:
            after = evaluate_samples(lm, spec, samples, shots, cfg, cancel=cancel)
        summary = compared(after, base, cfg.bootstrap, seed)
        arms[name] = FinetuneArm(**vars(summary), losses=losses)
        report(progress, step + 1, 2, f"fine-tuned {name} neurons")
    return FinetuneResult(
        model=lm.spec.name,
        dataset=dataset,
        n=len(samples),
        seed=seed,
        sample_ids=[s.id for s in samples],
        train_ids=list(train_ids),
        steps=steps,
        lr=lr,
        n_neurons=len(neurons),
        baseline=summarize(base, cfg.bootstrap, seed),
        located=arms["located"],
        random=arms["random"],
        **stamp(),
    )
