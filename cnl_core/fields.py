"""Every number a user can type, with its range and its name, defined once.

The library's parameter objects, the CLI's flags and the dashboard's number boxes all check their
numbers here, so a bad value gets the same sentence everywhere and the sentence names the field
("n per split: 2.5 is not a whole number; ..."), never a bare "Value -5 is less than minimum value 1."
(Gradio) or "invalid int value" (argparse).
"""

from __future__ import annotations

import argparse
import math
import numbers
from dataclasses import dataclass

from .errors import ParameterError

MAX_SEED = 2**31 - 1
TOKEN_CEILING = 2048  # longest prompt, answer or generation the library accepts


@dataclass(frozen=True)
class NumberField:
    """One typed number: its name as shown, its range, and an optional 'unset' value.

    `unset` is the number a dashboard box uses for "the default" (0 or -1): `read` turns it into None.
    `open_low` makes the lower bound exclusive (tau and p in (0, 1]).
    """

    label: str
    low: float
    high: float
    whole: bool = True
    open_low: bool = False
    unset: float | None = None

    def span(self) -> str:
        if self.whole:
            span = f"give a whole number from {int(self.low)} to {int(self.high)}"
        elif self.open_low:
            span = f"give a number above {self.low:g} and at most {self.high:g}"
        else:
            span = f"give a number from {self.low:g} to {self.high:g}"
        return span

    def problem(self, value) -> str | None:
        """What is wrong with the value, in words (without the field's name); None when it is fine."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return f"empty; {self.span()}."
        if isinstance(value, bool):
            return f"{value} is not a number; {self.span()}."
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            return f"{str(value)[:20]}... is out of range; {self.span()}."
        except (TypeError, ValueError):
            return f"{str(value)[:20]!r} is not a number; {self.span()}."
        if not math.isfinite(number):
            return f"{str(value)[:20]} is not a finite number; {self.span()}."
        if self.whole and number != int(number):
            return f"{number:g} is not a whole number; {self.span()}."
        too_low = number <= self.low if self.open_low else number < self.low
        if too_low or number > self.high:
            whole = number == int(number) and abs(number) < 1e15
            return f"{f'{int(number):,}' if whole else f'{number:g}'} is out of range; {self.span()}."
        return None

    def check(self, value) -> int | float:
        """The value as a number in range, or ParameterError naming the field. Accepts numbers and numeric text."""
        problem = self.problem(value)
        if problem:
            raise ParameterError(f"{self.label}: {problem}")
        number = float(value)
        return int(number) if self.whole else number

    def read(self, value) -> int | float | None:
        """A dashboard box: the checked number, or None where the box holds the 'unset' value or is empty."""
        if self.unset is not None and (value is None or (isinstance(value, str) and not value.strip())):
            return None
        number = self.check(value)
        return None if self.unset is not None and number == self.unset else number

    def typed(self, value) -> int | float | None:
        """A library parameter: numbers only (text is refused), checked; None stands for 'unset' where there is one."""
        if value is None and self.unset is not None:
            return None
        if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy numbers are Real too
            raise ParameterError(f"{self.label}: {str(value)[:20]!r} is not a number; {self.span()}.")
        number = self.check(value)
        if self.whole and not isinstance(value, numbers.Integral):
            raise ParameterError(f"{self.label}: {value!r:.20} is not a whole number (an int); {self.span()}.")
        if self.unset is not None and number == self.unset:
            raise ParameterError(f"{self.label}: in the library, leave it None (not {number:g}) for the default.")
        return number

    def arg(self, text: str) -> int | float | None:
        """argparse `type=`: a refused value becomes argparse's "argument --flag: ..." message; the 'unset' value
        (where the field has one) reads as None, the library's "default"."""
        problem = self.problem(text)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return self.read(text)


N_SPLIT = NumberField("n per split", 1, 1_000_000)  # the dataset's size is checked where it is known
SPLITS = NumberField("splits (k)", 1, 20)
SEED = NumberField("seed", 0, MAX_SEED)
BATCH = NumberField("batch size", 1, 4096)
IG_STEPS = NumberField("IG steps m", 1, 200)
MAX_PROMPT = NumberField("max prompt tokens (0: covers 99% of the prompts)", 0, TOKEN_CEILING, unset=0)
MAX_ANSWER = NumberField("max answer tokens (0: covers 99% of the gold answers)", 0, TOKEN_CEILING, unset=0)
TAU = NumberField("tau (x sample max)", 0.0, 1.0, whole=False, open_low=True)
P = NumberField("p (share of samples)", 0.0, 1.0, whole=False, open_low=True)
TOP_K = NumberField("top-k", 1, 10_000_000)
SIGMA = NumberField("z-score sigma", 0.0, 100.0, whole=False)
EVAL_N = NumberField("n test samples", 1, 1_000_000)
CONTROL_DRAWS = NumberField("random-control draws", 0, 50)
FACTOR = NumberField("amplify factor", 0.0, 100.0, whole=False)  # x0 is refused by Intervention: it is zeroing
FEWSHOT = NumberField("few-shot (-1: the task's own)", -1, 16, unset=-1)
MAX_NEW = NumberField("max new tokens (0: the task's own)", 0, TOKEN_CEILING, unset=0)
BOOTSTRAP = NumberField("bootstrap draws", 0, 100_000)
FT_STEPS = NumberField("fine-tuning steps", 1, 10_000)
FT_LR = NumberField("learning rate", 0.0, 1.0, whole=False, open_low=True)
FT_TRAIN_N = NumberField("training samples", 1, 1_000_000)
REPEATS = NumberField("repeats", 1, 20)
NULL_DRAWS = NumberField("draws per side", 1, 10)  # an empirical null's disjoint subsamples of each dataset
FACTS_PER_RELATION = NumberField("facts per relation", 1, 50)
LAYER = NumberField("layer", 0, 10_000)  # the model's own layer count is checked where the model is known
FRACTION = NumberField("shared fraction", 0.0, 1.0, whole=False)
INSPECT_N = NumberField("samples per dataset", 1, 2000)
TOP_EXAMPLES = NumberField("top examples", 1, 50)
STEER_TOKENS = NumberField("new tokens", 1, 128)
HARNESS_LIMIT = NumberField("samples per task (limit)", 1, 10_000_000)
HARNESS_FEWSHOT = NumberField("few-shot examples (-1: each task's own)", -1, 64, unset=-1)
HARNESS_GEN_TOKS = NumberField("new tokens for generation tasks (0: each task's own)", 0, 8 * TOKEN_CEILING, unset=0)
HARNESS_DRAWS = NumberField("random-control draws (each a full harness run)", 0, 20)
BOOTSTRAP_ITERS = NumberField("bootstrap iterations", 0, 100_000)

ALL = (
    N_SPLIT,
    SPLITS,
    SEED,
    BATCH,
    IG_STEPS,
    MAX_PROMPT,
    MAX_ANSWER,
    TAU,
    P,
    TOP_K,
    SIGMA,
    EVAL_N,
    CONTROL_DRAWS,
    FACTOR,
    FEWSHOT,
    MAX_NEW,
    BOOTSTRAP,
    FT_STEPS,
    FT_LR,
    FT_TRAIN_N,
    REPEATS,
    NULL_DRAWS,
    FRACTION,
    INSPECT_N,
    TOP_EXAMPLES,
    STEER_TOKENS,
    HARNESS_LIMIT,
    HARNESS_FEWSHOT,
    HARNESS_GEN_TOKS,
    HARNESS_DRAWS,
    BOOTSTRAP_ITERS,
    FACTS_PER_RELATION,
    LAYER,
)


@dataclass(frozen=True)
class TextField:
    """One typed text: its name as shown and its longest length.

    Every text box of a shared dashboard reaches the server through an API anyone can call, whatever
    the box's own `max_length`: the length is checked here, before the text reaches a tokenizer, a
    file system call or a model (a 100,000-character prompt held the model for minutes).
    """

    label: str
    max_chars: int

    def check(self, value) -> str:
        """The text (None reads as empty), or ParameterError naming the field and the length."""
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ParameterError(f"{self.label}: expected text, got {type(value).__name__}.")
        if len(value) > self.max_chars:
            raise ParameterError(
                f"{self.label}: {len(value):,} characters is too long; the limit is {self.max_chars:,}."
            )
        return value


MODEL_NAME = TextField("model", 300)
UPLOAD_NAME = TextField("dataset name", 100)
LABELS = TextField("labels", 2000)
TEMPLATE = TextField("prompt template", 2000)
STEER_PROMPT = TextField("prompt", 4000)
TASK_NAMES = TextField("lm-eval tasks", 1000)
TASK_FOLDER = TextField("folder of task YAMLs", 1000)
NEURON = TextField("neuron", 40)
FRACTIONS = TextField("shared fractions", 200)
TEXTS = (MODEL_NAME, UPLOAD_NAME, LABELS, TEMPLATE, STEER_PROMPT, TASK_NAMES, TASK_FOLDER, NEURON, FRACTIONS)

# Uploaded tables: read row by row, never more than this (the bytes bound the time, the rows and columns the
# memory: a 46 MB CSV of many short cells once took 3.3 GB as Python dicts).
UPLOAD_BYTES = 50 * 2**20
UPLOAD_ROWS = 200_000
UPLOAD_COLUMNS = 200
UPLOAD_CELL_CHARS = 100_000  # one CSV cell or JSONL line
SESSION_UPLOADS = 4  # datasets one visitor keeps added at a time (their own oldest goes)
UPLOADS_IN_PROCESS = 64  # visitors' uploaded datasets the whole process keeps (a new one is refused beyond it)
VISITOR_DISK_BYTES = 200 * 2**20  # one visitor's files on a shared lab: uploads, exports, task files

# lm-eval task folders: what a folder may hold before it is refused (`--include-path /` walked the disk).
TASK_FOLDER_ENTRIES = 2000
TASK_FILE_BYTES = 256 * 2**10
TASK_UPLOAD_FILES = 20  # task YAMLs and data files uploaded at once

# A shared dashboard's lm-eval run, in its child process (evaluate/harness_sandbox.py): what the child may use,
# what one message from it may hold, and the generation length served to it.
HARNESS_CHILD_CPU_S = 600  # the child's own CPU seconds (templates, metrics); the model's time is the server's
HARNESS_CHILD_MEMORY = 4 * 2**30  # address space
HARNESS_CHILD_WALL_S = 3600.0
HARNESS_CHILD_FILE_BYTES = 512 * 2**20  # any one file it writes (its datasets cache)
HARNESS_MESSAGE_BYTES = 64 * 2**20
HARNESS_REQUEST_CHARS = 64_000  # the text of one request
HARNESS_SHARED_GEN_TOKS = 256

# A model config: the largest shape accepted before any estimate (a config of 100,000 layers took 178 s and
# 4.3 GB to be refused). Generous: today's largest open models have about 130 layers and 30,000 wide FFNs.
CONFIG_BYTES = 2**20
LAYERS = NumberField("num_hidden_layers", 1, 1024)
HIDDEN = NumberField("hidden_size", 1, 131_072)
INTERMEDIATE = NumberField("intermediate_size", 1, 2**20)
HEADS = NumberField("num_attention_heads", 1, 1024)
KV_HEADS = NumberField("num_key_value_heads", 1, 1024)
HEAD_DIM = NumberField("head_dim", 1, 16_384)
VOCAB = NumberField("vocab_size", 1, 2**22)
