"""A workshop on one machine: N visitors of the real dashboard, through its HTTP API, at the same moment.

The dashboard runs as its own process (`python dashboard.py`, an empty cache but for the converted built-in
model) and every visitor is a gradio_client Client, so a session of its own, as a browser tab would be. Each row
compares the visitors' wall times (from the moment all press, to their answer) with one visitor alone in the same
run: the demo pressed by N at once on an empty result cache (one computes, the others wait for that run), the
same once it is stored, N different short Intervene runs (a located set handed out as a file, each visitor with
their own seed), one short Intervene while another visitor's locate runs (the short-job lane), eight visitors
each walking demo -> locate -> intervene -> inspect at once (none may fail: the inspector once failed beside
another visitor's hooks), and, on a shared lab, one short Intervene while another visitor's lm-eval run of
uploaded tasks goes on in its child process (the model's lock taken per batch, issue #32).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.figures import ROOT, _verdict

VISITORS = 10
START_TIMEOUT_S = 240
INTERVENE = dict(
    mode="zero", factor=2.0, positions="all", targets=["add1"], n=8, draws=2, fewshot=-1, max_new=0, overlap=False
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The dashboard in a process of its own, on an empty cache (the converted model linked in)."""

    def __init__(self, cache: Path, flags: tuple[str, ...] = ()):
        from cnl_core.paths import cache_root

        models = cache_root() / "models"
        cache.mkdir(parents=True, exist_ok=True)
        if models.is_dir():
            (cache / "models").symlink_to(models.resolve())
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "CNL_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        self.log = open(cache / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "dashboard.py"), "--port", str(self.port), *flags],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self) -> None:
        from gradio_client import Client

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited ({self.proc.returncode}); see its log")
            try:
                Client(self.url, verbose=False)
                return
            except Exception:  # noqa: BLE001  # not up yet
                time.sleep(1)
        raise RuntimeError("the dashboard did not start in time")

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def _at_once(calls: list) -> tuple[list[float], list[str]]:
    """Run the calls in threads released together; (each one's wall time, the errors)."""
    times, errors, start = [0.0] * len(calls), [], threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        t0 = time.perf_counter()
        try:
            calls[i]()
        except Exception as exc:  # noqa: BLE001  # a failed visitor is counted, not fatal
            errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")
        times[i] = time.perf_counter() - t0

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, errors


def _row(name: str, times: list[float], alone: float, limit: float, errors: list[str]) -> tuple:
    p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
    ok = p95 <= limit * alone and not errors
    failed = f"; {len(errors)} failed: {errors[0]}" if errors else ""
    return (
        name,
        f"p50 {p50:.1f} s, p95 {p95:.1f} s vs {alone:.1f} s alone{failed}",
        f"{p95 / alone:.2f}x",
        f"p95 <= {limit:g}x alone, no visitor fails",
        _verdict(ok),
    )


def _located_file(folder: Path) -> Path:
    """A located set as the teacher hands it out: the demo's add1 set, written by the CLI."""
    from cnl_core.cli import main

    out = folder / "add1_located.json"
    main(
        [
            "locate",
            "--dataset",
            "add1",
            "--n",
            "12",
            "--splits",
            "2",
            "--seed",
            "2",
            "--tau",
            "0.1",
            "--p",
            "0.5",
            "--out",
            str(out),
        ],
        exit_on_error=False,
    )
    return out


def workshop(gpu: bool) -> list:
    if gpu:
        return []
    from gradio_client import handle_file

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        located = _located_file(tmp)
        server = Server(tmp / "cache")
        try:
            results = tmp / "cache" / "results"

            def demo(client):
                return lambda: client.predict(api_name="/demo_ui")

            server.client().predict("0:0", ["add1"], 2, api_name="/inspect_ui")  # the model loaded, as in a workshop
            alone, errors = _at_once([demo(server.client())])
            shutil.rmtree(results, ignore_errors=True)  # empty again: the N visitors find nothing stored
            clients = [server.client() for _ in range(VISITORS)]
            cold, cold_errors = _at_once([demo(c) for c in clients])
            rows.append(
                _row(
                    f"demo pressed by {VISITORS} visitors at once, nothing stored (one computes, the others "
                    "wait for that run) vs one visitor alone",
                    cold,
                    alone[0],
                    2.0,
                    errors + cold_errors,
                )
            )
            warm, warm_errors = _at_once([demo(c) for c in clients])
            rows.append(_row(f"demo pressed by {VISITORS} visitors at once, stored", warm, alone[0], 2.0, warm_errors))

            def visitor_with_set(client):
                return client, _label(client.predict(handle_file(str(located)), api_name="/reload_ui"))

            def intervene(client, label, seed):
                return lambda: client.predict(located_on=label, seed=seed, **INTERVENE, api_name="/intervene_ui")

            prepared = [visitor_with_set(server.client()) for _ in range(VISITORS + 1)]
            (one, label), rest = prepared[0], prepared[1:]
            alone_iv, errors = _at_once([intervene(one, label, 100)])
            distinct, more = _at_once([intervene(c, lab, 200 + i) for i, (c, lab) in enumerate(rest)])
            rows.append(
                _row(
                    f"{VISITORS} visitors each running a different short Intervene (add1, n = 8, 2 control "
                    "draws, own seed) at once vs one alone",
                    distinct,
                    alone_iv[0],
                    10.0,
                    errors + more,
                )
            )

            locator = server.client()
            long_job = threading.Thread(
                target=lambda: locator.predict(
                    ["add2"],
                    48,
                    2,
                    5,
                    "grad_x_act",
                    20,
                    "right",
                    0,
                    0,
                    8,
                    "relative",
                    0.2,
                    0.5,
                    50,
                    3.0,
                    "positive",
                    api_name="/locate_ui",
                )
            )
            long_job.start()
            time.sleep(5)  # the locate is under way
            during, errors = _at_once([intervene(one, label, 300)])
            long_job.join()
            rows.append(
                _row(
                    "one short Intervene while another visitor's locate (add2, 2 x 48 samples) runs vs alone "
                    "(the short-job lane; the model's lock taken in turns)",
                    during,
                    alone_iv[0],
                    3.0,
                    errors,
                )
            )

            def walk(client, k):
                def run():
                    client.predict(api_name="/demo_ui")
                    client.predict(
                        ["add1"],
                        8,
                        2,
                        10 + k,
                        "grad_x_act",
                        20,
                        "right",
                        0,
                        0,
                        8,
                        "relative",
                        0.2,
                        0.5,
                        50,
                        3.0,
                        "positive",
                        api_name="/locate_ui",
                    )
                    mine = _label(client.predict(handle_file(str(located)), api_name="/reload_ui"))
                    client.predict(located_on=mine, seed=400 + k, **INTERVENE, api_name="/intervene_ui")
                    client.predict(f"{20 + k}:{7 * k}", ["add1"], 2, api_name="/inspect_ui")

                return run

            walk(server.client(), 9)()  # the demo stored, the walk's other steps warmed: what later visitors find
            alone_walk, errors = _at_once([walk(server.client(), 0)])
            walks, more = _at_once([walk(server.client(), k) for k in range(1, 9)])
            rows.append(
                _row(
                    "8 visitors each walking demo -> locate (add1, 2 x 8) -> intervene -> inspect at once vs "
                    "one walk alone",
                    walks,
                    alone_walk[0],
                    10.0,
                    errors + more,
                )
            )
        finally:
            server.stop()
        rows.append(_beside_lm_eval(tmp, located))
    return rows


def _beside_lm_eval(tmp: Path, located: Path) -> tuple:
    """A shared lab: one visitor's lm-eval run of uploaded tasks (its child process) and another's short Intervene."""
    import json

    from gradio_client import handle_file

    from cnl_core.data.samples import get_dataset

    tasks = tmp / "tasks"
    tasks.mkdir()
    shutil.copy(ROOT / "docs" / "lm-eval-example" / "add1_heldout.yaml", tasks)
    rows = [
        {"question": s.prompt.removeprefix("Question: ").removesuffix("\nAnswer:"), "answer": s.target}
        for s in get_dataset("add2").rows()[:200]
    ]
    (tasks / "add1_heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    server = Server(tmp / "shared-cache", ("--shared", "--no-warm-demo"))
    try:

        def with_set(client):
            return client, _label(client.predict(handle_file(str(located)), api_name="/reload_ui"))

        (short, label), (long, long_label) = with_set(server.client()), with_set(server.client())

        def short_job(seed):  # a seed of its own each time: a stored result would be served without the model
            return lambda: short.predict(located_on=label, seed=seed, **INTERVENE, api_name="/intervene_ui")

        alone, errors = _at_once([short_job(500)])
        long.predict(
            [handle_file(str(tasks / "add1_heldout.yaml")), handle_file(str(tasks / "add1_heldout.jsonl"))],
            api_name="/take_task_files",
        )
        harness = threading.Thread(
            target=lambda: long.predict(
                located_on=long_label,
                mode="zero",
                factor=2.0,
                positions="all",
                tasks="add1_heldout",
                include="(your uploaded tasks)",
                n=200,
                seed=0,
                draws=1,
                fewshot=-1,
                max_new=0,
                overlap=False,
                api_name="/harness_ui",
            )
        )
        harness.start()
        time.sleep(20)  # the child is running and asking for batches
        during, more = _at_once([short_job(501)])
        harness.join()
        return _row(
            "one short Intervene while another visitor's lm-eval run of uploaded tasks (200 rows, 3 runs, its "
            "child process) goes on, shared lab, vs alone (the model's lock per batch)",
            during,
            alone[0],
            3.0,
            errors + more,
        )
    finally:
        server.stop()


def _label(reloaded) -> str:
    """The located set's label, from the reload call's outputs (the message names it in bold)."""
    text = reloaded[0] if isinstance(reloaded, (list, tuple)) else str(reloaded)
    return text.split("**")[1]
