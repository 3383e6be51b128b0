"""Capability Neuron Lab: the Gradio dashboard.

Load a model, pick datasets and splits, locate capability neurons (CNL), compare the located
sets, and prove them by zeroing or amplifying. Every computation is a `cnl_core` call; the
tabs live in ui/, this file only prepares the environment and starts the server.

    python dashboard.py                 # http://127.0.0.1:7860, the built-in offline model and data
    python dashboard.py --share         # a temporary public link
    GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=8080 python dashboard.py   # flags still win
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from pathlib import Path

from cnl_core.paths import cache_root

os.environ.setdefault("GRADIO_TEMP_DIR", str(cache_root() / "gradio"))  # keep every written file under cache/
os.environ.setdefault("MPLCONFIGDIR", str(cache_root() / "matplotlib"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ui.app import build_app  # noqa: E402

ASSETS = Path(__file__).parent / "assets"
MAX_AGE_S = 24 * 3600  # uploads and exports older than this are removed when the app starts


def clean_old_files(max_age_s: float = MAX_AGE_S) -> int:
    """Remove what visitors uploaded or exported more than max_age_s ago; returns how many entries went."""
    removed, cutoff = 0, time.time() - max_age_s
    for folder in (Path(os.environ["GRADIO_TEMP_DIR"]), cache_root() / "exports"):
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
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    clean_old_files()
    print(f"Capability Neuron Lab on http://{args.host}:{args.port}/ (add --share for a temporary public link)")
    build_app().launch(server_name=args.host, server_port=args.port, share=args.share,
                       theme=gr.themes.Soft(), css_paths=[ASSETS / "style.css"], footer_links=["api"],
                       max_file_size="50mb")


if __name__ == "__main__":
    main()
