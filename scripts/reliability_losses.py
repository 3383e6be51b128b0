"""Counts for the README's "nothing lost" table: seeded hostile inputs thrown at everything that writes or deletes.

    .venv/bin/python scripts/reliability_losses.py [--seed 0] [--per-kind 200]

Each case runs in a fresh sandbox: a score cache (an entry, converted models and uploads beside the
scores, a link to a folder outside), a folder outside the cache, and earlier files. After the case every
file of the sandbox is compared with before. A case is accepted, refused with the library's sentence, or
a crash (any other exception: must be 0). Data lost: a file the case had no business changing changed or
vanished, an earlier file was damaged by a failed write, or a cache shard was read back with scores other
than those written. Wrote outside: a file appeared anywhere but the case's own target (a temporary file
left behind counts). Code run: a value written as shell or Python code created its canary file.
tests/unit/test_nothing_lost.py runs this script with a few cases per kind and asserts those three are 0.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import resource
import signal
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from cnl_core.cli import main as cli  # noqa: E402
from cnl_core.cli.run_config import plan_steps, read_config  # noqa: E402
from cnl_core.errors import CNLError  # noqa: E402
from cnl_core.experiments.json_io import write_json  # noqa: E402
from cnl_core.locate.score_store import ScoreStore  # noqa: E402
from cnl_core.report.exports import to_safe_csv  # noqa: E402
from cnl_core.serialize import to_data
from tests.unit.test_results import result  # noqa: E402

ENTRY = "0123456789abcdef0123"
RECORD = {"model": "m", "dataset": "d", "grid": {"n_layers": 2, "width": 3}, "score": {"method": "activation"}}


def _snapshot(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):  # links are listed, never followed
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            key = str(p.relative_to(root))
            if p.is_symlink():
                out[key] = "link:" + os.readlink(p)
            elif p.is_file():
                out[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _sandbox(tmp: Path) -> Path:
    for folder in (f"cache/scores/{ENTRY}", "cache/models/m", "cache/uploads", "outside", "folder"):
        (tmp / folder).mkdir(parents=True)
        (tmp / folder / "keep").write_text("data")
    (tmp / "cache/scores/link").symlink_to(tmp / "outside")
    (tmp / "cache/scores/up").symlink_to(tmp / "cache")
    (tmp / "a-file").write_text("x")
    (tmp / "earlier.json").write_text(json.dumps({"earlier": "result"}))
    (tmp / "located.json").write_text(json.dumps(to_data(result())))
    return tmp


def _canaries(tmp: Path) -> list[str]:
    c = tmp / "canary"
    return [
        f"__import__('os').system('touch {c}')",
        f"$(touch {c})",
        f"`touch {c}`",
        f"; touch {c}",
        f"{{{{ __import__('os').system('touch {c}') }}}}",
        f"x' ; import os; os.system('touch {c}') #",
    ]


def _run(call) -> str:
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            call()
    except (CNLError, SystemExit):
        return "refused"
    except Exception:  # anything else is a bug: counted, never hidden
        return "crash"
    return "accepted"


def _judge(tmp: Path, before: dict, outcome: str, may_change: set[str], may_vanish: str | None = None) -> Counter:
    """Classify one case: its outcome, and what it did to the sandbox that it should not have."""
    after = _snapshot(tmp)
    c = Counter({outcome: 1})
    lost = [
        k
        for k, v in before.items()
        if after.get(k) != v
        and k not in may_change
        and not (may_vanish and (k == may_vanish or k.startswith(may_vanish + "/")))
    ]
    new = [k for k in after if k not in before and k not in may_change and k != "canary"]
    c["data lost"] += bool(lost)
    c["wrote outside"] += bool(new)
    c["code run"] += (tmp / "canary").exists()
    return c


def cache_clear_keys(rng: random.Random, tmp: Path) -> Counter:
    pool = [
        "..",
        "../models",
        "../..",
        "../../outside",
        "/",
        str(tmp / "outside"),
        str(tmp / "cache"),
        "link",
        "up",
        "up/scores",
        "",
        ".",
        " ..",
        "..\\..",
        f"{ENTRY}/..",
        f"{ENTRY}/keep",
        "a\0b",
        "x" * 300,
        "nope",
        "~",
        "$HOME",
        "*",
        ENTRY,
        ENTRY,
        *_canaries(tmp),
    ]
    key = rng.choice(pool)
    before = _snapshot(tmp)
    outcome = _run(lambda: cli(["cache", "clear", "--key", key], exit_on_error=False))
    return _judge(tmp, before, outcome, set(), f"cache/scores/{ENTRY}" if key == ENTRY else None)


def output_paths(rng: random.Random, tmp: Path) -> Counter:
    name = rng.choice(
        [
            "new.json",
            "new/deeper/r.json",
            "earlier.json",
            "a-file/r.json",
            "folder",
            "",
            "\0",
            "/proc/cnl/r.json",
            "outside/../r2.json",
            "x" * 300 + ".json",
            "cache/scores/link/r.json",
            " ",
            "a-file",
            *_canaries(tmp),
        ]
    )
    if rng.random() < 0.25:  # an export folder
        target = name.removesuffix(".json")
        argv = ["export", str(tmp / "located.json"), "--out-dir", str(tmp / target) if target.strip("\0 ") else target]
    else:
        target = name
        argv = [
            "compare",
            str(tmp / "located.json"),
            str(tmp / "located.json"),
            "--out",
            str(tmp / name) if name.strip("\0 ") else name,
        ]
    before = _snapshot(tmp)
    outcome = _run(lambda: cli(argv, exit_on_error=False))
    after = _snapshot(tmp)
    real = os.path.realpath(argv[-1]) if "\0" not in argv[-1] else ""
    mine = {
        k
        for k in after
        if outcome == "accepted"
        and real
        and (os.path.realpath(tmp / k) == real or os.path.realpath(tmp / k).startswith(real + os.sep))
    }
    return _judge(tmp, before, outcome, mine)  # the target (or the export folder's files) and nothing else


def _shard_scores(seed: int) -> torch.Tensor:
    return torch.randn(2, 2, 3, generator=torch.Generator().manual_seed(seed))


def full_disk_writes(rng: random.Random, tmp: Path) -> Counter:
    """A write that the disk cuts off after a random number of bytes, over a good earlier file."""
    kind = rng.choice(["json", "csv", "shard"])
    os.environ["CNL_CACHE_DIR"] = str(tmp / "cache")
    store = ScoreStore(RECORD)
    if kind == "shard":
        store.ensure()
        target = store.write_shard(["a", "b"], _shard_scores(1), torch.zeros(2))
        write = lambda: store.write_shard(["a", "b"], _shard_scores(2), torch.ones(2))  # noqa: E731
    else:
        target = tmp / f"earlier.{kind}"
        target.write_text("good,old\n" * 300)
        frame = pd.DataFrame({"x": range(rng.randrange(1, 600))})
        write = (
            (lambda: write_json(target, {"rows": list(frame["x"])}))
            if kind == "json"
            else (lambda: to_safe_csv(frame, target))
        )
    before = _snapshot(tmp)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (rng.choice([0, 1, 100, 1000, 3000, 10**6]), hard))
    try:
        outcome = _run(write)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    c = _judge(tmp, before, outcome, {str(target.relative_to(tmp))} if outcome == "accepted" else set())
    if kind == "shard":  # read back: the old scores or the new ones, never anything else
        got = ScoreStore(RECORD).load(["a", "b"])
        want = _shard_scores(2 if outcome == "accepted" else 1).to(torch.float16)
        c["data lost"] += not got or not all(torch.equal(got[k][0], want[i]) for i, k in enumerate("ab"))
    return c


def run_configs(rng: random.Random, tmp: Path) -> Counter:
    """A valid config with one key or value replaced; checked as `run` does before step 1 (nothing runs)."""
    located = str(tmp / "located.json")
    steps = [
        {"command": "compare", "files": [located, located], "out": str(tmp / "cmp.json")},
        {"command": "export", "files": [located], "out_dir": str(tmp / "exports")},
        {"command": "evaluate", "dataset": "add1", "n": 2, "neurons": located, "out": str(tmp / "ev.json")},
    ]
    values = [
        None,
        True,
        False,
        0,
        -1,
        2.5,
        10**30,
        float("inf"),
        "",
        "..",
        "/proc/x/y.json",
        str(tmp / "a-file/x"),
        [],
        [1, [2]],
        {"a": 1},
        {"$ref": "x"},
        "--help",
        "-h",
        "--out=/tmp/x",
        *_canaries(tmp),
    ]
    keys = [
        "bogus",
        "help",
        "h",
        "out",
        "out_dir",
        "files",
        "n",
        "command",
        "model",
        "x y",
        "--n",
        "",
        "__class__",
        *_canaries(tmp),
    ]
    config = {"model": {"model": "smollm2-135m"}, "steps": steps}
    text = None
    roll = rng.random()
    if roll < 0.1:
        depth = rng.choice([100, 1_000, 200_000])
        text = '{"steps": [' + '{"a": ' * depth + "1" + "}" * depth + "]}"
    elif roll < 0.55:
        rng.choice(steps)[rng.choice(keys)] = rng.choice(values)
    else:
        step = rng.choice(steps)
        step[rng.choice(list(step))] = rng.choice(values)
    path = tmp / "run.json"
    path.write_text(text if text is not None else json.dumps(config))  # inf is written as Infinity
    before = _snapshot(tmp)
    return _judge(tmp, before, _run(lambda: plan_steps(read_config(path))), set())


def edited_shards(rng: random.Random, tmp: Path) -> Counter:
    """A cache shard with one field edited, one byte flipped or its end cut off, then read back."""
    os.environ["CNL_CACHE_DIR"] = str(tmp / "cache")
    store = ScoreStore(RECORD)
    store.ensure()
    scores = _shard_scores(3)
    path = store.write_shard(["a", "b"], scores, torch.zeros(2))
    raw = bytearray(path.read_bytes())
    with safe_open(str(path), framework="pt") as fh:
        meta, tensors = dict(fh.metadata()), {k: fh.get_tensor(k) for k in fh.keys()}
    how = rng.choice(["id", "swap", "schema", "extra", "no checksum", "checksum", "flip", "cut", "tensors"])
    if how in ("flip", "cut"):
        # a flip lands in the scores: the header's field order is Rust's (random per process), so a flip there
        # would not hit the same field twice; edited fields are the other cases
        start = 8 + int.from_bytes(raw[:8], "little") if how == "flip" else 0
        i = rng.randrange(start, len(raw))
        if how == "flip":
            raw[i] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(raw if how == "flip" else raw[:i]))
    else:
        meta.update(
            {
                "id": {"sample_ids": json.dumps(["a", "c"])},
                "swap": {"sample_ids": json.dumps(["b", "a"])},
                "schema": {"schema": "9"},
                "extra": {"x": "y"},
                "checksum": {"checksum": "0" * 64},
                "tensors": {},
                "no checksum": {},
            }[how]
        )
        if how == "no checksum":
            meta.pop("checksum")
        if how == "tensors":
            tensors["scores"] = _shard_scores(4).to(torch.float16)
        save_file(tensors, str(path), metadata=meta)
    got: dict = {}
    outcome = _run(lambda: got.update(ScoreStore(RECORD).load(["a", "b", "c"])))
    c = Counter({"refused" if outcome == "accepted" and not got else outcome: 1})
    want = scores.to(torch.float16)
    c["data lost"] += bool(got) and (
        set(got) != {"a", "b"} or not all(torch.equal(got[k][0], want[i]) for i, k in enumerate("ab"))
    )
    return c


KINDS = {
    "cache clear --key (.., paths, links, the cache itself)": cache_clear_keys,
    "--out / --out-dir paths (under a file, a folder, /proc, links)": output_paths,
    "writes cut off by a full disk (result, CSV, cache shard)": full_disk_writes,
    "run configs, one key or value replaced (checked before step 1)": run_configs,
    "cache shards with a field edited, a score bit flipped or cut short": edited_shards,
}


def count(seed: int, per_kind: int) -> dict[str, Counter]:
    rng = random.Random(seed)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the file-size limit fails, as on a full disk
    out = {}
    cwd, cache = os.getcwd(), os.environ.get("CNL_CACHE_DIR")
    for what, case in KINDS.items():
        total = Counter()
        for _ in range(per_kind):
            with tempfile.TemporaryDirectory() as tmp:
                root = _sandbox(Path(tmp))
                os.chdir(root)
                os.environ["CNL_CACHE_DIR"] = str(root / "cache")
                try:
                    total += case(rng, root)
                finally:
                    os.chdir(cwd)
        out[what] = total
    if cache is None:
        os.environ.pop("CNL_CACHE_DIR", None)
    else:
        os.environ["CNL_CACHE_DIR"] = cache
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-kind", type=int, default=200)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print("| input | tried | accepted | refused with a sentence | crash | data lost | wrote outside | code run |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for what, c in count(args.seed, args.per_kind).items():
        tried = c["accepted"] + c["refused"] + c["crash"]
        print(
            f"| {what} | {tried} | {c['accepted']} | {c['refused']} | {c['crash']} | {c['data lost']} | "
            f"{c['wrote outside']} | {c['code run']} |"
        )


if __name__ == "__main__":
    main()
