"""A handler's inputs, read from its own signature: the one place their order is written.

Gradio passes a handler its input components' values by position, so the list given to `.click(...)` must
follow the handler's parameters; writing that list by hand in app.py (and the same order again in ui/gpu.py's
time estimates) let the three drift apart. Here each parameter is found by name: in the keyword components
given, else in exactly one of the tabs' namespaces (a name found in two is refused, not guessed). The
parameters Gradio fills itself (a `gr.Progress` default, a `gr.Request`, an event's `gr.SelectData`) are left
out.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import SimpleNamespace

import gradio as gr


def _filled_by_gradio(param: inspect.Parameter) -> bool:
    """A progress tracker, the request or an event's data: Gradio passes these itself, by the annotation."""
    if isinstance(param.default, gr.Progress):
        return True
    annotation = param.annotation
    if isinstance(annotation, type):
        return issubclass(annotation, (gr.EventData, gr.Request))
    return isinstance(annotation, str) and (
        annotation == "gr.Request" or annotation.startswith("gr.") and annotation.endswith("Data")
    )


def parameters(handler: Callable) -> list[str]:
    """The names of the inputs `handler` reads, in order (through its decorators: functools.wraps keeps them)."""
    return [
        name
        for name, param in inspect.signature(handler).parameters.items()
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD) and not _filled_by_gradio(param)
    ]


def inputs(handler: Callable, *groups: SimpleNamespace, **named: gr.components.Component) -> list:
    """The components for `handler`'s parameters, in its order: `named` first, then the one group holding the name."""
    names = parameters(handler)
    unread = sorted(set(named) - set(names))
    if unread:
        raise LookupError(f"{getattr(handler, '__name__', handler)} has no parameter `{unread[0]}`.")
    found = []
    for name in names:
        if name in named:
            found.append(named[name])
            continue
        holders = [g for g in groups if isinstance(getattr(g, name, None), gr.blocks.Block)]
        if len(holders) != 1:
            why = "none of the groups given has it" if not holders else f"{len(holders)} groups have it: name one"
            raise LookupError(f"{getattr(handler, '__name__', handler)} reads `{name}`, but {why}.")
        found.append(getattr(holders[0], name))
    return found
