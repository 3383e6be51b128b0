"""A visitor's lm-eval task YAML, read against an allowlist: what a data-only task needs, and nothing else.

Why: the harness turns task YAML into code in many ways (`!function`, a metric name it does not know goes
to `evaluate.load`, `custom` filters, `process_docs`, a dataset path that is a Hub script, `file://` and
`::` data URLs, a `cache_dir`). Refusing those one by one kept finding new ones. Here a shared dashboard's
task file may hold only the keys below, each value of the type and size given, so a new harness feature is
refused until someone adds it here on purpose:

- `dataset_path` one of the plain file formats (json, csv, parquet, text) and `dataset_kwargs.data_files`
  naming only files uploaded with it (bare file names), never a URL (`://`, `::` in any value);
- metrics and aggregations only from the harness's own registry, filters from a short list (no `custom`);
- generation greedy and bounded (`max_gen_toks`, `until`), few-shot and `repeats` bounded;
- templates as text of a bounded size; they render only in the sandboxed child process
  (harness_worker.py), whose Jinja environment caps string and loop sizes.

Every refusal is one sentence naming the file, the key and its line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .. import fields as F
from ..errors import HarnessError
from .task_files import read_task_file

FILE_FORMATS = ("json", "csv", "parquet", "text")  # the `datasets` builders that read plain files
OUTPUT_TYPES = ("loglikelihood", "loglikelihood_rolling", "multiple_choice", "generate_until")
FILTERS = ("regex", "take_first", "take_first_k", "lowercase", "uppercase", "remove_whitespace", "majority_vote")
TEMPLATE_CHARS = 4000  # one doc_to_text / doc_to_choice / description template
SHORT_CHARS = 200  # names, delimiters, regular expressions
MAX_REPEATS = 4
MAX_STOPS = 8
MAX_METRICS = 8
MAX_FILTERS = 4


@dataclass(frozen=True)
class _Where:
    shown: str  # the file's name as the visitor gave it

    def refuse(self, node: yaml.Node | None, key: str, why: str) -> HarnessError:
        line = f" (line {node.start_mark.line + 1})" if node is not None else ""
        return HarnessError(f"The task file {self.shown} is refused here: {key}{line} {why}.")


def _registries() -> tuple[set[str], set[str]]:
    """The harness's own metric and aggregation names (its registry; nothing outside it is looked up)."""
    import lm_eval.api.metrics  # noqa: F401  (registers the built-in metrics)
    from lm_eval.api.registry import AGGREGATION_REGISTRY, METRIC_REGISTRY

    return set(METRIC_REGISTRY), set(AGGREGATION_REGISTRY)


def _text(where: _Where, key: str, node: yaml.Node, limit: int = SHORT_CHARS) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
        raise where.refuse(node, key, "must be text")
    if len(node.value) > limit:
        raise where.refuse(node, key, f"is {len(node.value):,} characters long; the limit is {limit:,}")
    if "://" in node.value or "::" in node.value:
        raise where.refuse(node, key, "names a URL ('://' or '::'); tasks here read only their uploaded files")
    return node.value


def _choice(where: _Where, key: str, node: yaml.Node, names, after: str) -> str:
    """Text that must be one of `names`; a refusal reads "KEY (line N) is 'VALUE'" + after."""
    value = _text(where, key, node)
    if value not in names:
        raise where.refuse(node, key, f"is {value[:80]!r}{after}")
    return value


def _int(where: _Where, key: str, node: yaml.Node, low: int, high: int) -> int:
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:int":
        raise where.refuse(node, key, "must be a whole number")
    value = int(node.value)
    if not low <= value <= high:
        raise where.refuse(node, key, f"is {value}; allowed: {low} to {high}")
    return value


def _bool(where: _Where, key: str, node: yaml.Node, only: bool | None = None) -> bool:
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
        raise where.refuse(node, key, "must be true or false")
    value = node.value.lower() in ("true", "yes", "on")
    if only is not None and value != only:
        raise where.refuse(node, key, f"must be {str(only).lower()} here")
    return value


def _number(where: _Where, key: str, node: yaml.Node, only_zero: bool = False) -> float:
    if not isinstance(node, yaml.ScalarNode) or node.tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
        raise where.refuse(node, key, "must be a number")
    value = float(node.value)
    if only_zero and value != 0:
        raise where.refuse(node, key, "must be 0 here (greedy decoding)")
    return value


def _items(where: _Where, key: str, node: yaml.Node, limit: int) -> list[yaml.Node]:
    if not isinstance(node, yaml.SequenceNode):
        raise where.refuse(node, key, "must be a list")
    if len(node.value) > limit:
        raise where.refuse(node, key, f"lists {len(node.value)} entries; the limit is {limit}")
    return node.value


def _texts(where: _Where, key: str, node: yaml.Node, limit: int, chars: int = SHORT_CHARS) -> list[str]:
    if isinstance(node, yaml.ScalarNode):
        return [_text(where, key, node, chars)]
    return [_text(where, key, n, chars) for n in _items(where, key, node, limit)]


def _mapping(where: _Where, key: str, node: yaml.Node, rules: dict[str, Callable]) -> dict:
    if not isinstance(node, yaml.MappingNode):
        raise where.refuse(node, key, "must be a mapping")
    out = {}
    for k, v in node.value:
        name = k.value if isinstance(k, yaml.ScalarNode) else "?"
        full = f"{key}.{name}" if key else name
        if name not in rules:
            allowed = ", ".join(rules)
            raise where.refuse(k, full, f"is not read here (a data-only task may use: {allowed})")
        out[name] = rules[name](where, full, v)
    return out


class _Reader:
    """The rules of one task file; `data_names` are the files uploaded with it."""

    def __init__(self, data_names: set[str]):
        self.data_names = data_names
        self.metrics, self.aggregations = _registries()

    def task(self, where: _Where, node: yaml.Node) -> dict:
        def template(w: _Where, k: str, n: yaml.Node):
            if isinstance(n, yaml.ScalarNode) and n.tag == "tag:yaml.org,2002:str":
                return _text(w, k, n, TEMPLATE_CHARS)
            return self.index_or_list(w, k, n)

        rules: dict[str, Callable] = {
            "task": self.name,
            "tag": lambda w, k, n: _texts(w, k, n, 8),
            "dataset_path": self.dataset_path,
            "dataset_kwargs": self.dataset_kwargs,
            "training_split": _text,
            "validation_split": _text,
            "test_split": _text,
            "fewshot_split": _text,
            "doc_to_text": template,
            "doc_to_target": template,
            "doc_to_choice": template,
            "description": lambda w, k, n: _text(w, k, n, TEMPLATE_CHARS),
            "target_delimiter": _text,
            "fewshot_delimiter": _text,
            "num_fewshot": lambda w, k, n: _int(w, k, n, 0, int(F.HARNESS_FEWSHOT.high)),
            "output_type": self.output_type,
            "generation_kwargs": self.generation,
            "metric_list": self.metric_list,
            "filter_list": self.filter_list,
            "repeats": lambda w, k, n: _int(w, k, n, 1, MAX_REPEATS),
            "should_decontaminate": lambda w, k, n: _bool(w, k, n, only=False),
            "metadata": lambda w, k, n: _mapping(w, k, n, {"version": _number}),
            "fewshot_config": lambda w, k, n: _mapping(w, k, n, {"sampler": self.sampler}),
        }
        data = _mapping(where, "", node, rules)
        for required in ("task", "dataset_path"):
            if required not in data:
                raise where.refuse(None, required, "is missing (a task names itself and its data)")
        return data

    def name(self, where: _Where, key: str, node: yaml.Node) -> str:
        value = _text(where, key, node, 200)
        if not value or not (value[0].isalnum() and all(c.isalnum() or c in "_.-" for c in value)):
            raise where.refuse(node, key, f"{value[:80]!r} is not a task name (letters, digits, '_', '-', '.')")
        return value

    def dataset_path(self, where: _Where, key: str, node: yaml.Node) -> str:
        return _choice(
            where,
            key,
            node,
            FILE_FORMATS,
            f"; a task here reads its uploaded files with one of {', '.join(FILE_FORMATS)}",
        )

    def dataset_kwargs(self, where: _Where, key: str, node: yaml.Node) -> dict:
        return _mapping(where, key, node, {"data_files": self.data_files})

    def data_files(self, where: _Where, key: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return {
                k.value: self.data_files(where, f"{key}.{k.value}", v) for k, v in node.value if _text(where, key, k)
            }
        names = _texts(where, key, node, 16)
        for name in names:
            if name not in self.data_names:
                known = ", ".join(sorted(self.data_names)) or "none"
                raise where.refuse(
                    node,
                    key,
                    f"names {name[:80]!r}, which is not a file uploaded with it (uploaded data files: {known})",
                )
        return names[0] if isinstance(node, yaml.ScalarNode) else names

    def index_or_list(self, where: _Where, key: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.SequenceNode):
            return _texts(where, key, node, 64)
        return _int(where, key, node, 0, 10_000)

    def output_type(self, where: _Where, key: str, node: yaml.Node) -> str:
        return _choice(where, key, node, OUTPUT_TYPES, f"; one of {', '.join(OUTPUT_TYPES)}")

    def generation(self, where: _Where, key: str, node: yaml.Node) -> dict:
        return _mapping(
            where,
            key,
            node,
            {
                "until": lambda w, k, n: _texts(w, k, n, MAX_STOPS, 100),
                "max_gen_toks": lambda w, k, n: _int(w, k, n, 1, int(F.HARNESS_GEN_TOKS.high)),
                "do_sample": lambda w, k, n: _bool(w, k, n, only=False),
                "temperature": lambda w, k, n: _number(w, k, n, only_zero=True),
            },
        )

    def metric_list(self, where: _Where, key: str, node: yaml.Node) -> list:
        return [
            _mapping(
                where,
                f"{key}[{i}]",
                item,
                {
                    "metric": lambda w, k, n: self.registered(w, k, n, self.metrics, "metric"),
                    "aggregation": lambda w, k, n: self.registered(w, k, n, self.aggregations, "aggregation"),
                    "higher_is_better": _bool,
                    "ignore_case": _bool,
                    "ignore_punctuation": _bool,
                    "regexes_to_ignore": lambda w, k, n: _texts(w, k, n, 8),
                },
            )
            for i, item in enumerate(_items(where, key, node, MAX_METRICS))
        ]

    def registered(self, where: _Where, key: str, node: yaml.Node, names: set[str], what: str) -> str:
        known = ", ".join(sorted(names))
        return _choice(where, key, node, names, f", not a {what} of lm-eval's own registry ({known})")

    def filter_list(self, where: _Where, key: str, node: yaml.Node) -> list:
        def one(w: _Where, k: str, n: yaml.Node) -> dict:
            return _mapping(
                w,
                k,
                n,
                {
                    "function": lambda w2, k2, n2: self.registered(w2, k2, n2, set(FILTERS), "filter here"),
                    "regex_pattern": _text,
                    "group_select": lambda w2, k2, n2: _int(w2, k2, n2, -16, 16),
                    "ignore_case": _bool,
                    "fallback": _text,
                    "k": lambda w2, k2, n2: _int(w2, k2, n2, 1, 16),
                },
            )

        return [
            _mapping(
                where,
                f"{key}[{i}]",
                item,
                {
                    "name": _text,
                    "filter": lambda w, k, n: [one(w, f"{k}[{j}]", f) for j, f in enumerate(_items(w, k, n, 8))],
                },
            )
            for i, item in enumerate(_items(where, key, node, MAX_FILTERS))
        ]

    def sampler(self, where: _Where, key: str, node: yaml.Node) -> str:
        return _choice(where, key, node, ("first_n", "default"), "; one of first_n, default")


def read_allowed_task(path: Path, shown: str, data_names: set[str]) -> dict:
    """A task YAML as allowed data, or HarnessError naming the file, the key and the line. The file is first
    read as plain YAML (tags and aliases refused, its size bounded: task_files.read_task_file)."""
    read_task_file(path, strict=True, shown=shown)  # size, syntax, tags, aliases: named with their line
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    return _Reader(data_names).task(_Where(shown), node)
