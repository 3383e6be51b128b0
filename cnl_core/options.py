"""Every choice list and every run-level default, defined once.

The library's config dataclasses (`ModelSpec`, `ScoreConfig`, `LocateParams`, `EvalConfig`) take
their defaults from here or hold them as field defaults; the CLI and the dashboard read both, so a
default changes in one place. Scoring-method names come from the scorer registry
(`cnl_core.locate.scorers.scorer_names`), dataset names from the dataset registry.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "smollm2-135m"
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")
QUANTIZATIONS = ("none", "8bit", "4bit", "auto")  # auto: the lightest precision that fits ("quantize if needed")
QUANTIZATION_NOTE = "8/4-bit saves memory, not time: on a CPU it is no faster than float32"
RULES = ("relative", "topk", "zscore")  # per-sample selection rules
SIGNS = ("positive", "negative", "absolute")  # which scores a sample selects on: KN keeps positive ones only
# Scoring methods that integrate gradients (IG steps and rule apply): of the gold answer's log-probability (ours,
# round one), or of its probability (Knowledge Neurons as Dai et al. publish it)
IG_METHODS = ("integrated_gradients", "integrated_gradients_prob")
IG_RULES = ("right", "midpoint")  # integrated-gradient steps: alpha = k/m (Dai et al.) or (k - 1/2)/m
INTERVENTION_MODES = ("zero", "amplify")
# ROME's rank-one edit: the key covariance estimated on generic text (ROME), or the identity (no covariance)
KEY_COVARIANCES = ("text", "identity")
POSITIONS = ("all", "answer")  # token positions an intervention edits
# where a fact prompt's neurons are scored: the positions that predict the answer (CNL's, round one), or the
# subject's last token (where Knowledge Neurons' and ROME's facts are said to sit)
SCORE_POSITIONS = ("answer", "subject")
# What an intervention's effect is measured on, with its name on a chart. The gold answer's log-likelihood per
# token comes first, the default: it moves even where a small model's accuracy is near 0.
METRICS = ("gold_loglik", "accuracy")
METRIC_TITLES = dict(zip(METRICS, ("gold log-likelihood / token", "accuracy")))
TASK_KINDS = ("generate_number", "choice", "loglik")  # how accuracy is scored
UPLOAD_KINDS = ("auto", *TASK_KINDS)


@dataclass(frozen=True)
class RunDefaults:
    """Sizes and seeds of a run that no config object owns."""

    # A task the built-in model can do (one-digit addition, the demo's): students who follow the defaults locate
    # and intervene on a real capability. GSM8K, the paper's, scores 0 on a 135M model and takes minutes per run.
    dataset: str = "add1"
    n: int = 20  # samples per split
    splits: int = 2
    seed: int = 0
    batch_size: int = 8
    estimate_tokens: int = 256  # tokens per sample the memory estimate assumes before a dataset is chosen
    eval_n: int = 10  # evaluation samples per tested dataset
    control_draws: int = 2
    amplify_factor: float = 2.0
    steer_tokens: int = 24  # new tokens of each steering answer (the CLI's --max-new-tokens, the dashboard's box)
    sweep_taus: tuple[float, ...] = (0.05, 0.1, 0.2)
    sweep_ps: tuple[float, ...] = (0.3, 0.5, 0.7)
    finetune_steps: int = 20
    finetune_lr: float = 1e-3
    finetune_train_n: int = 16
    inspect_n: int = 12  # samples per dataset the neuron inspector reads (CLI `inspect --n`, the Inspector's box)
    null_draws: int = 3  # subsamples per side of the empirical null (CLI `null --draws`, the Compare tab's box)
    null_other: str = "imdb"  # the empirical null's unrelated dataset (CLI `null --other`, the Compare tab's list)
    decouple_repeats: int = 1  # draws of each shared fraction in the decoupling curve


DEFAULTS = RunDefaults()


@dataclass(frozen=True)
class HarnessDefaults:
    """lm-evaluation-harness runs (`lm-eval` command, Intervene tab): the optional extra and its run sizes."""

    requirements: str = "requirements-lmeval.txt"
    install: str = "make lm-eval  (or: .venv/bin/pip install -r requirements-lmeval.txt)"
    batch_size: int = 8
    bootstrap_iters: int = 1000  # the harness's own default (100000) is slow for bootstrapped metrics on CPU
    control_draws: int = 1  # each draw is one more full harness run


HARNESS = HarnessDefaults()


@dataclass(frozen=True)
class BaselineDefaults:
    """The unmodified model's accuracy on each dataset (the Data tab's "can it do this?"), measured once per model
    and dataset and stored in the result cache (experiments/baselines.py)."""

    n: int = 20  # held-out samples: coarse, with its interval shown, but it tells 0% from 50%
    seed: int = 0
    can_do_margin: float = 0.2  # accuracy this far above chance: "can do"
    weak_margin: float = 0.05  # this far above chance: "weak"; below it: "cannot do"


BASELINE = BaselineDefaults()


@dataclass(frozen=True)
class JobLimits:
    """How the dashboard lines up model work by its expected cost, and what a shared lab refuses.

    A job expected to take more than `short_line_s` on this server joins the long-job line, whatever its kind (a
    GSM8K Intervene of many samples is long; an add1 locate of 12 samples is short). In shared mode a job expected
    to take more than `shared_limit_s` is refused before it starts, with the sentence saying what to shrink;
    the operator sets the limit with CNL_JOB_LIMIT_S (0: no limit)."""

    short_line_s: float = 60.0
    shared_limit_s: float = 600.0
    env: str = "CNL_JOB_LIMIT_S"


JOBS = JobLimits()
