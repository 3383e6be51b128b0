"""The Locate tab's handler called as the page calls it, with the tab's usual boxes: one place for its many inputs.

Dashboard tests that need a located set in a session call `locate_in(state, ["add1"], n=4)` and name only what
they change, instead of repeating the handler's seventeen positional inputs.
"""

from __future__ import annotations

from typing import Any

from ui.tabs import locate_tab

# the Locate and Data tabs' boxes as the tests use them (grad x act, relative threshold 0.1 / 0.5, two splits)
BOXES: dict[str, Any] = dict(
    k=2,
    seed=0,
    method="grad_x_act",
    ig_steps=20,
    ig_rule="right",
    max_prompt=None,
    max_answer=None,
    batch_size=4,
    rule="relative",
    tau=0.1,
    p=0.5,
    top_k=100,
    sigma=3.0,
    sign="positive",
)


def quiet(*_args, **_kwargs) -> None:
    """A progress callback that shows nothing (for any handler's `progress`)."""


def locate_in(state, datasets: list[str], n: int, progress=quiet, **boxes: Any):
    """locate_ui(datasets, n, ..., state): returns (summary, session) as the handler does."""
    return locate_tab.locate_ui(datasets=datasets, n=n, state=state, progress=progress, **{**BOXES, **boxes})
