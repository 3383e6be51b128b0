"""Capability Neuron Lab: the Gradio dashboard.

Load a model, pick datasets and splits, locate capability neurons (CNL), compare the located
sets, and prove them by zeroing or amplifying. Every computation is a `cnl_core` call; the
tabs live in ui/, this file only prepares the environment and starts the server.

    python dashboard.py                 # http://127.0.0.1:7860, the built-in offline model and data
    python dashboard.py --share         # a temporary public link (shared mode: see cnl_core/shared_mode.py)
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=8080 python dashboard.py   # flags still win
    python dashboard.py --host 0.0.0.0 --allow-path /srv/models --allow-model gpt2   # shared, with allowlists
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from cnl_core import cache_root, visitors_root

os.environ.setdefault("GRADIO_TEMP_DIR", str(cache_root() / "gradio"))  # keep every written file under cache/
os.environ.setdefault("MPLCONFIGDIR", str(cache_root() / "matplotlib"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402

from cnl_core import shared_mode  # noqa: E402
from ui.app import build_app  # noqa: E402
from ui.tabs import baseline_panel, demo_panel  # noqa: E402
from ui.upload_guard import DataOnlyUploads  # noqa: E402

ASSETS = Path(__file__).parent / "assets"
MAX_AGE_S = 24 * 3600  # uploads and exports older than this are removed when the app starts


def clean_old_files(max_age_s: float = MAX_AGE_S) -> int:
    """Remove what visitors uploaded or exported more than max_age_s ago; returns how many entries went."""
    removed, cutoff = 0, time.time() - max_age_s
    for folder in (Path(os.environ["GRADIO_TEMP_DIR"]), visitors_root()):
        for entry in folder.glob("*") if folder.is_dir() else []:
            try:
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                    removed += 1
            except OSError:
                pass
    return removed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    on_spaces = bool(os.environ.get("SPACE_ID"))
    host = os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_spaces else "127.0.0.1")
    port = int(os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or 7860)
    parser = argparse.ArgumentParser(description="Capability Neuron Lab dashboard")
    parser.add_argument("--host", default=host, help=f"address to bind (default {host}; 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--share", action="store_true", help="create a temporary public gradio.live link")
    parser.add_argument(
        "--shared",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="shared mode: visitors name no server path and run no code (default: on on a Space, "
        "with --share and with a --host other than this machine; env CNL_SHARED)",
    )
    parser.add_argument(
        "--allow-path",
        action="append",
        default=[],
        metavar="FOLDER",
        help="shared mode: a folder whose models, dataset files and task YAMLs visitors may name "
        "(repeatable; env CNL_ALLOWED_PATHS, separated by ':')",
    )
    parser.add_argument(
        "--allow-model",
        action="append",
        default=[],
        metavar="HUB_ID",
        help="shared mode: the Hub models visitors may load (repeatable; default: any; env "
        "CNL_ALLOWED_MODELS, comma-separated)",
    )
    parser.add_argument(
        "--warm-demo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="compute the one-click demo at start-up, in the background, so every visitor gets it at "
        "once (default: on in shared mode, off on a laptop; env CNL_WARM_DEMO=1/0). With the "
        "cache on persistent storage (CNL_CACHE_DIR) it is computed once per model, ever",
    )
    parser.add_argument(
        "--warm-baselines",
        action="store_true",
        help="after the demo, measure the built-in model's accuracy on every built-in dataset (the "
        "Data tab's 'can do' marks), in the long-job line; once per model, ever, with the cache "
        "on persistent storage (several minutes on a CPU; env CNL_WARM_BASELINES=1)",
    )
    parser.add_argument(
        "--allow-pickled-weights",
        action="store_true",
        help="let model folders without safetensors load pickled weights (runs code if the weights "
        "are hostile; env CNL_ALLOW_PICKLE=1)",
    )
    return parser.parse_args(argv)


def policy_from(args: argparse.Namespace) -> shared_mode.Policy:
    """The shared-mode policy these flags and the environment give (flags first)."""
    return shared_mode.Policy.from_env(
        share=args.share,
        host=args.host,
        shared=args.shared,
        allowed_paths=tuple(args.allow_path),
        allowed_models=tuple(args.allow_model),
        allow_pickle=args.allow_pickled_weights,
    )


def launch_options(args: argparse.Namespace) -> dict:
    """Gradio's launch() options: the server, the look, and the upload guard (uploads are data only)."""
    return dict(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        theme=gr.themes.Soft(),
        css_paths=[ASSETS / "style.css"],
        footer_links=["api"],
        max_file_size="50mb",
        app_kwargs={"middleware": [Middleware(DataOnlyUploads, upload_dir=os.environ["GRADIO_TEMP_DIR"])]},
    )


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    clean_old_files()
    policy = shared_mode.configure(policy_from(args))  # before the app is built: the tabs read it
    print(f"Capability Neuron Lab on http://{args.host}:{args.port}/ (add --share for a temporary public link)")
    print(policy.describe())
    app = build_app()
    baselines = args.warm_baselines or os.environ.get("CNL_WARM_BASELINES", "").strip().lower() in ("1", "true", "yes")
    if warm_wanted(args, policy) or baselines:
        threading.Thread(
            target=_warm, args=(warm_wanted(args, policy), baselines), name="warm-demo", daemon=True
        ).start()
    app.launch(**launch_options(args))


def warm_wanted(args: argparse.Namespace, policy: shared_mode.Policy) -> bool:
    """--warm-demo / --no-warm-demo, else CNL_WARM_DEMO, else on in shared mode (a Space, a workshop)."""
    if args.warm_demo is not None:
        return args.warm_demo
    env = os.environ.get("CNL_WARM_DEMO", "").strip().lower()
    return env in ("1", "true", "yes") if env else policy.shared


def _warm(demo: bool = True, baselines: bool = False) -> None:
    log = logging.getLogger("cnl.dashboard")
    started = time.monotonic()
    try:
        if demo:
            demo_panel.warm_demo()
            log.info("the demo is ready for every visitor (%.0f s)", time.monotonic() - started)
        if baselines:
            baseline_panel.warm_baselines()
            log.info("every built-in dataset's baseline is stored (%.0f s)", time.monotonic() - started)
    except Exception as exc:  # noqa: BLE001  # a visitor's press computes it instead
        log.warning("warming failed (%s); a visitor's press computes it", exc)


if __name__ == "__main__":
    main()
