"""lm-evaluation-harness is optional: without it, the command and the dashboard say how to install it."""

import sys

import gradio as gr
import pytest

from cnl_core.errors import HarnessError
from cnl_core.evaluate.harness import harness_available
from cnl_core.options import HARNESS


@pytest.fixture()
def no_harness(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # `import lm_eval` now fails as if it were not installed


def test_the_command_explains_how_to_install_the_harness(no_harness, tmp_path):
    from cnl_core.cli import main

    ok, why = harness_available()
    assert not ok and HARNESS.install in why
    with pytest.raises(HarnessError, match="make lm-eval"):
        main(["lm-eval", "--tasks", "arc_easy", "--neurons", str(tmp_path / "n.json")], exit_on_error=False)


def test_the_dashboard_shows_the_install_hint_instead_of_the_task_field(no_harness):
    from ui.tabs import harness_panel

    with gr.Blocks() as blocks:
        panel = harness_panel.build()
    assert not panel.available
    texts = [b.value for b in blocks.blocks.values() if isinstance(b, gr.Markdown)]
    assert any("requirements-lmeval.txt" in t for t in texts)


def test_the_extra_is_pinned_and_installed_by_the_dev_setup():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert "lm-eval==" in (root / HARNESS.requirements).read_text()
    setup = (root / "scripts" / "setup.sh").read_text()
    assert HARNESS.requirements in setup and "dev|lm-eval)" in setup
    assert "lm-eval:" in (root / "Makefile").read_text()


def test_command_defaults_are_the_library_ones():
    from cnl_core.cli import build_parser
    from cnl_core.options import DEFAULTS

    args = build_parser().parse_args(["lm-eval", "--tasks", "arc_easy", "--neurons", "n.json"])
    assert (args.batch_size, args.bootstrap_iters, args.control_draws) == (
        HARNESS.batch_size,
        HARNESS.bootstrap_iters,
        HARNESS.control_draws,
    )
    assert (args.factor, args.seed, args.limit, args.num_fewshot) == (
        DEFAULTS.amplify_factor,
        DEFAULTS.seed,
        None,
        None,
    )
