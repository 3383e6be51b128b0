"""Counts for the README's reliability section: seeded bad inputs thrown at every reader and field.

    .venv/bin/python scripts/reliability_counts.py [--seed 0] [--per-kind 400]

Each input is classed as accepted, refused with the library's own sentence, or anything else (a crash:
must be 0). For the dashboard it also checks that the visitor's session after a refused input equals the
session before it. The property tests in tests/unit/test_fields.py and test_result_fuzzing.py run the same
checks under hypothesis on every `make test`; this script only counts.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import json
import random
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cnl_core import fields as F  # noqa: E402
from cnl_core.cli import build_parser  # noqa: E402
from cnl_core.data.uploads import dataset_from_records, read_table  # noqa: E402
from cnl_core.errors import CNLError  # noqa: E402
from cnl_core.experiments.eval_results import EvalResult  # noqa: E402
from cnl_core.experiments.locate_result import LocateResult  # noqa: E402
from cnl_core.serialize import from_data, to_data
from tests.unit.test_fields import NUMERIC_FLAGS, REQUIRED  # noqa: E402
from tests.unit.test_result_fuzzing import _snapshot, _state  # noqa: E402
from tests.unit.test_results import _evaluation, result  # noqa: E402

POOL = [
    None,
    True,
    "",
    " ",
    "abc",
    "1e309",
    "-1e309",
    "nan",
    "inf",
    "-0",
    "2.5",
    "1e20",
    "-5",
    "0",
    "1",
    "0x10",
    "1_000",
    "٣",
    "1,5",
    [1],
    {},
    10**30,
    -(10**30),
    float("nan"),
    float("inf"),
    0.5,
    3,
    7.0,
    100,
    1e9,
]


def _value(rng: random.Random):
    kind = rng.random()
    if kind < 0.5:
        return rng.choice(POOL)
    if kind < 0.75:
        return rng.uniform(-1e6, 1e6) if rng.random() < 0.5 else rng.randint(-(10**6), 10**6)
    return "".join(rng.choice("0123456789.-+eE xn") for _ in range(rng.randint(0, 6)))


def _json(rng: random.Random, depth: int = 0):
    makers = [
        lambda: None,
        lambda: rng.random() < 0.5,
        lambda: rng.randint(-(10**20), 10**20),
        lambda: rng.choice([1.5, float("nan"), 1e308, -0.0]),
        lambda: rng.choice(["", "x" * 300, "d/1", "../x"]),
        lambda: [_json(rng, depth + 1) for _ in range(rng.randrange(3))],
        lambda: {str(rng.randrange(5)): _json(rng, depth + 1) for _ in range(rng.randrange(3))},
    ]
    return makers[rng.randrange(7 if depth < 3 else 5)]()


def _mutate(doc, rng: random.Random):
    doc = copy.deepcopy(doc)
    node = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return doc
        key = rng.choice(keys)
        if isinstance(node[key], (dict, list)) and node[key] and rng.random() < 0.6:
            node = node[key]
            continue
        if rng.random() < 0.2:
            del node[key]
        else:
            node[key] = _json(rng)
        return doc


def _classify(call) -> str:
    try:
        call()
    except CNLError:
        return "refused"
    except SystemExit as exc:
        return "refused" if exc.code == 2 else "other"
    except Exception:  # anything else is a bug: counted, never hidden
        return "other"
    return "accepted"


def count(seed: int, per_kind: int) -> dict[str, Counter]:
    rng = random.Random(seed)
    out: dict[str, Counter] = {}
    out["numbers typed into a field (library, dashboard)"] = Counter(
        _classify(lambda f=rng.choice(F.ALL), v=_value(rng): f.check(v)) for _ in range(per_kind)
    )
    parser = build_parser()

    def flag(command, option, text):
        with contextlib.redirect_stderr(io.StringIO()):
            parser.parse_args([command, *REQUIRED.get(command, []), f"{option}={text}"])

    out["numbers given to a CLI flag"] = Counter(
        _classify(lambda f=rng.choice(NUMERIC_FLAGS), v=_value(rng): flag(f[0], f[1], str(v))) for _ in range(per_kind)
    )
    locate_doc, eval_doc = to_data(result()), _evaluation()
    out["locate result files, one field replaced or removed"] = Counter(
        _classify(lambda d=_mutate(locate_doc, rng): from_data(LocateResult, d)) for _ in range(per_kind)
    )
    out["evaluation result files, one field replaced or removed"] = Counter(
        _classify(lambda d=_mutate(eval_doc, rng): from_data(EvalResult, d)) for _ in range(per_kind)
    )

    def upload(data: bytes, name: str):
        dataset_from_records(read_table(data, name), "fuzz", "text", "label")

    out["uploaded files (random bytes, CSV or JSONL)"] = Counter(
        _classify(lambda b=rng.randbytes(rng.randrange(400)), n=rng.choice(["u.csv", "u.jsonl"]): upload(b, n))
        for _ in range(per_kind)
    )

    lost = Counter()
    tricky = ["a, b, and c", 'say "hi"', "=1+1", "  +cmd", "line\nbreak", "ünïcödé ≠", "-0.25", "１２", "tab\there"]
    for i in range(per_kind):
        rows = [{"text": rng.choice(tricky) + str(j), "label": rng.choice(tricky)} for j in range(rng.randint(1, 5))]
        buf = io.StringIO()
        if i % 2:
            writer = csv.DictWriter(buf, ["text", "label"])
            writer.writeheader()
            writer.writerows(rows)
        else:
            buf.write("".join(json.dumps(r) + "\n" for r in rows))
        try:
            back = read_table(buf.getvalue().encode(), "u.jsonl" if i % 2 == 0 else "u.csv")
            lost["accepted"] += 1
            lost["cells changed"] += sum(a[k] != b[k] for a, b in zip(rows, back) for k in a) + abs(
                len(rows) - len(back)
            )
        except CNLError:
            lost["refused"] += 1
    out["valid uploads with commas, quotes, formulas, line breaks, unicode"] = lost

    from gradio import Error as GradioError

    from ui.tabs import export_tab

    changed = 0
    reload = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(per_kind):
            path = Path(tmp) / f"{i}.json"
            doc = _mutate(locate_doc, rng) if i % 2 else _json(rng)
            path.write_bytes(json.dumps(doc).encode() if i % 3 else rng.randbytes(200))
            state = _state()
            before = _snapshot(state)
            try:
                export_tab.reload_ui(str(path), state)
                reload["accepted"] += 1
            except GradioError as exc:  # a refusal only if it is the library's own error, shown as a sentence
                reload["refused" if isinstance(exc.__cause__, CNLError) else "other"] += 1
                changed += _snapshot(state) != before
            except Exception:
                reload["other"] += 1
    reload["session changed by a refusal"] = changed
    out["dashboard: re-loading a result file"] = reload
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-kind", type=int, default=400)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    counts = count(args.seed, args.per_kind)
    print("| input | tried | accepted | refused with a sentence | anything else | session changed | cells changed |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for what, c in counts.items():
        tried = c["accepted"] + c["refused"] + c["other"]
        changed = c.get("session changed by a refusal", "n/a")
        cells = c.get("cells changed", "n/a")
        print(f"| {what} | {tried} | {c['accepted']} | {c['refused']} | {c['other']} | {changed} | {cells} |")


if __name__ == "__main__":
    main()
