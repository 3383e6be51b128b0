"""Scoring spread over processes: torchrun with two (a thread each) vs one process with one thread, and vs
one process with every core as its threads (what a plain run does).

Each run starts with an empty cache, so each scores every sample; the clock runs from the loaded model
to the located set (the main process waits for the other's shards), start-up and loading excluded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.figures import ROOT, _smol_folder, _verdict

_CHILD = r"""
import json, sys, time
import torch
from cnl_core import parallel
from cnl_core.experiments.locate import run_locate
from cnl_core.model.loading import load_model

launch = parallel.launched()
if launch is not None:
    parallel.join(launch, cuda=False)
lm = load_model("smollm2-135m")
if launch is not None:
    launch.wait_for_all()  # both models loaded: the clocks start together
start = time.perf_counter()
run = run_locate(lm, sys.argv[1], int(sys.argv[2]), 2, 0, batch_size=int(sys.argv[3]), launch=launch)
seconds = time.perf_counter() - start
if launch is None or launch.is_main:
    print(json.dumps({"seconds": seconds, "neurons": run.result().neurons.flat.tolist(),
                      "threads": torch.get_num_threads(), "computed": run.table.computed}))
parallel.leave()
"""

DATASET, N, BATCH = "gsm8k", 12, 4  # 24 samples in 6 batches: 3 per process


def _locate(processes: int, cache: Path, child: Path, threads: int | None = None) -> dict:
    cache.mkdir(parents=True)
    (cache / "models").symlink_to(_smol_folder().parent)
    outer = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "OMP_NUM_THREADS")}
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**outer, "CNL_CACHE_DIR": str(cache), "PYTHONPATH": path}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    head = (
        [sys.executable]
        if processes == 1
        else [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", str(processes)]
    )
    out = subprocess.run(
        [*head, str(child), DATASET, str(N), str(BATCH)], capture_output=True, text=True, env=env, check=True, cwd=ROOT
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def scoring_processes(gpu: bool) -> list:
    """Each setting twice, alternating; the best of each, and whether every located set is the same.

    Processes add speed only where they add cores: a second process on a second core against one
    thread on one, but on a 2-core machine a plain run already has both cores as threads."""
    tmp = Path(os.environ["CNL_CACHE_DIR_BENCH"]) / "dist"
    tmp.mkdir(parents=True, exist_ok=True)
    child = tmp / "locate_child.py"
    child.write_text(_CHILD)
    settings = {"1 process, 1 thread": (1, 1), "1 process, all cores": (1, None), "2 processes": (2, None)}
    runs: dict[str, list[dict]] = {name: [] for name in settings}
    for repeat in range(2):
        for name, (processes, threads) in settings.items():
            runs[name].append(_locate(processes, tmp / f"{processes}-{threads}-{repeat}", child, threads))
    single, plain, two = (min(runs[name], key=lambda r: r["seconds"]) for name in settings)
    same = all(r["neurons"] == single["neurons"] for rs in runs.values() for r in rs)
    work = f"{N} x 2 {DATASET} samples, batch {BATCH}, {os.cpu_count()} cores"
    spread, crowded = single["seconds"] / two["seconds"], plain["seconds"] / two["seconds"]
    return [
        (
            f"locate scoring, torchrun 2 processes (a thread each) vs 1 process of 1 thread; {work}",
            f"{two['seconds']:.1f} s vs {single['seconds']:.1f} s; same neurons: {same}",
            f"{spread:.2f}x",
            "faster (at most 2x), same neurons",
            _verdict(1 < spread and same),
        ),
        (
            f"locate scoring, torchrun 2 processes vs 1 process with {plain['threads']} threads; {work}",
            f"{two['seconds']:.1f} s vs {plain['seconds']:.1f} s",
            f"{crowded:.2f}x",
            "no core added: about 1x (>= 0.75x)",
            _verdict(crowded >= 0.75),
        ),
    ]
