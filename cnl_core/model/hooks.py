"""Hooks on the neurons: read them, or switch them off (zero) or up (amplify) while the model runs.

Every read and edit goes through a forward pre-hook on the FFN down projection, whose input is the
neuron vector. A hook sees it as [rows, tokens, width] on every architecture: OPT flattens rows and
tokens before its FFN, and `neuron_hooks` gives them back their shape (and flattens what the hook
returns), so no caller reshapes; the down projection's output (what ROME's edit changes) is seen the same way,
and `residual_hooks` sees a decoder layer's input or output (causal tracing's noise and restoring). Hooks live
only inside a context manager, so they are removed on exit, also after an exception.

An `Intervention` is what a user asks for: which neurons, zeroed or amplified, at every position or at
the answer positions. An `Edit` is what one forward pass does about it, made before the pass: per layer,
the neurons it changes and their factors (one row for every row of the pass, or one per row where rows
run under different interventions), and which positions it changes. One function applies an edit
(`Edit.apply`), for every pass: the gold-answer pass and the prompt pass (forward.py, generation.py:
they say where the answer positions are), the decoding steps (every position predicts an answer token),
integrated gradients and its completeness check (locate/), and whatever runs inside `intervene` (the
harness, steering, knowledge probes). An edit holds the model's lock while its hooks are on; so does
`intervene` for its whole block, so two interventions (two visitors of the app, two threads) never overlap.

Isolation by construction: a hook acts only for the thread that installed it (`owned_pre_hook`). A pass
another thread runs meanwhile, by mistake without the lock (an inspector's one-off projection), sees the
model unmodified instead of a stranger's edit: no code path has to remember the lock for another visitor's
numbers to stay theirs. Every block of hooked passes runs on one thread (no `yield` inside one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.utils.hooks import RemovableHandle

from .. import fields as F
from ..errors import ParameterError, UnsupportedModelError
from ..options import DEFAULTS, INTERVENTION_MODES, POSITIONS
from .architectures import FFNAccess
from .loading import LoadedModel
from .neurons import NeuronSet
from .positions import last_positions

HookFn = Callable[[int, torch.Tensor], torch.Tensor | None]


def owned_pre_hook(module: torch.nn.Module, hook: Callable, with_kwargs: bool = False) -> RemovableHandle:
    """Register a forward pre-hook that acts only in the calling thread's passes (inert in every other thread);
    returns its handle. The one way this package hooks a module."""
    owner = threading.get_ident()

    def mine_with_kwargs(mod, args, kwargs):
        return hook(mod, args, kwargs) if threading.get_ident() == owner else None

    def mine(mod, args):
        return hook(mod, args) if threading.get_ident() == owner else None

    if with_kwargs:
        return module.register_forward_pre_hook(mine_with_kwargs, with_kwargs=True)
    return module.register_forward_pre_hook(mine)


def owned_forward_hook(module: torch.nn.Module, hook: Callable) -> RemovableHandle:
    """Register a forward hook (after the module runs) that acts only in the calling thread's passes."""
    owner = threading.get_ident()
    return module.register_forward_hook(
        lambda mod, args, out: hook(mod, args, out) if threading.get_ident() == owner else None
    )


@contextmanager
def neuron_hooks(
    ffn: FFNAccess, fn: HookFn | None, layers: Sequence[int] | None = None, *, output: HookFn | None = None
) -> Iterator[None]:
    """Call fn(layer, x[rows, tokens, width]) before each down projection; a returned tensor replaces x. With
    `output`, call output(layer, y[rows, tokens, hidden]) on each down projection's output too (the FFN's
    contribution to the residual stream: what ROME's edit changes); a returned tensor replaces y.

    Where a layer flattens rows and tokens before its FFN (`Adapter.flat`), the rows and tokens are read from
    the decoder layer's input, x is that view, and the tensor the down projection gets is fn's (or x, which fn
    may have marked for gradients) flattened again; the same for y. The hooks are removed on exit whatever happens,
    and act only in this thread's passes (`owned_pre_hook`).
    """
    handles = []
    flat = ffn.adapter.flat
    shapes: dict[int, torch.Size] = {}  # per flattening layer, the [rows, tokens] of its current pass

    def view(layer: int, t: torch.Tensor) -> torch.Tensor:
        if layer not in shapes:
            raise UnsupportedModelError(
                "This model's FFN input is not [rows, tokens, width], and its adapter "
                "does not say that it flattens them (Adapter.flat)."
            )
        return t.view(*shapes[layer], t.shape[-1])

    def before_down(layer: int, act: HookFn) -> Callable:
        def hook(_module, args):
            x = args[0]
            if x.dim() == 3:
                out = act(layer, x)
                return None if out is None else (out, *args[1:])
            rows = view(layer, x)
            out = act(layer, rows)
            return ((rows if out is None else out).reshape(-1, x.shape[-1]), *args[1:])

        return hook

    def after_down(layer: int, act: HookFn) -> Callable:
        def hook(_module, _args, y):
            if y.dim() == 3:
                return act(layer, y)
            rows = view(layer, y)
            out = act(layer, rows)
            return None if out is None else out.reshape(-1, y.shape[-1])

        return hook

    try:
        for layer in range(ffn.grid.n_layers) if layers is None else layers:
            if flat:

                def record(_module, args, kwargs, _layer=layer):
                    hidden = args[0] if args else kwargs["hidden_states"]
                    shapes[_layer] = hidden.shape[:-1]

                handles.append(owned_pre_hook(ffn.blocks[layer], record, with_kwargs=True))

            if fn is not None:
                handles.append(owned_pre_hook(ffn.down[layer], before_down(layer, fn)))
            if output is not None:
                handles.append(owned_forward_hook(ffn.down[layer], after_down(layer, output)))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def residual_hooks(
    ffn: FFNAccess, fn: HookFn, layers: Sequence[int] | None = None, *, where: str = "output"
) -> Iterator[None]:
    """Call fn(layer, h[rows, tokens, hidden]) on the residual stream: each decoder layer's output (`where="output"`)
    or its input (`"input"`: layer 0's input is what the embedding adds, after any scaling a model does, as
    Gemma's x sqrt(width), and OPT's projection); a returned tensor replaces h. The hooks are removed on exit and
    act only in this thread's passes."""
    if where not in ("input", "output"):
        raise ParameterError("Residual hooks sit at a decoder layer's input or output.")
    handles = []
    try:
        for layer in range(ffn.grid.n_layers) if layers is None else layers:
            if where == "output":

                def out_hook(_module, _args, out, _layer=layer):
                    h = out[0] if isinstance(out, tuple) else out
                    new = fn(_layer, h)
                    if new is None:
                        return None
                    return (new, *out[1:]) if isinstance(out, tuple) else new

                handles.append(owned_forward_hook(ffn.blocks[layer], out_hook))
            else:

                def in_hook(_module, args, kwargs, _layer=layer):
                    h = args[0] if args else kwargs["hidden_states"]
                    new = fn(_layer, h)
                    if new is None:
                        return None
                    if args:
                        return (new, *args[1:]), kwargs
                    return args, {**kwargs, "hidden_states": new}

                handles.append(owned_pre_hook(ffn.blocks[layer], in_hook, with_kwargs=True))
        yield
    finally:
        for h in handles:
            h.remove()


def check_positions(positions: object) -> str:
    """A form's or a file's token positions, refused by name unless one of POSITIONS."""
    if positions not in POSITIONS:
        raise ParameterError(f"Positions must be one of {', '.join(POSITIONS)}, not {positions!r}.")
    return positions


@dataclass(frozen=True)
class Intervention:
    neurons: NeuronSet
    mode: str = "zero"
    factor: float = DEFAULTS.amplify_factor  # used by amplify
    positions: str = POSITIONS[0]  # all token positions, or only those that predict answer tokens

    def __post_init__(self):
        if self.mode not in INTERVENTION_MODES:
            raise ParameterError(f"Intervention must be one of {', '.join(INTERVENTION_MODES)}.")
        check_positions(self.positions)
        if self.mode == "amplify":
            F.FACTOR.typed(self.factor)
            if self.factor == 0:
                raise ParameterError(
                    "Amplify factor 0 switches the neurons off: choose the 'zero' intervention instead."
                )

    @staticmethod
    def from_inputs(neurons: NeuronSet, mode: str, factor, positions: str = POSITIONS[0]) -> Intervention:
        """From a form or the command line: the factor may be text, and is read only when amplifying."""
        return Intervention(
            neurons, mode, F.FACTOR.check(factor) if mode == "amplify" else DEFAULTS.amplify_factor, positions
        )

    @property
    def scale(self) -> float:
        return 0.0 if self.mode == "zero" else float(self.factor)

    @property
    def answers_only(self) -> bool:
        return self.positions == POSITIONS[1]

    def describe(self) -> dict:
        return {"mode": self.mode, "factor": self.scale, "positions": self.positions, "n_neurons": len(self.neurons)}


def activation_device(lm: LoadedModel, layer: int) -> torch.device:
    """Where a layer's neuron activations will be: its weights' device, or the input device for layers offloaded
    (weights on the meta device, or in RAM beside a GPU), which run on it. An edit's tensors are made there before
    the pass, so nothing is copied inside it."""
    device = lm.ffn.down_weight(layer).device
    offloaded = device.type == "meta" or (device.type == "cpu" and lm.input_device.type != "cpu")
    return lm.input_device if offloaded else device


LAST = "last"  # Edit.where: each row's last position, for passes that do not say where the answer is


@dataclass(frozen=True, eq=False)
class Edit:
    """What one forward pass does to the neurons; every tensor is made before the pass (no host copy inside it).

    Per layer, `columns` are the changed neurons' indices (None: the whole layer) and `factors` a float tensor that
    broadcasts against [rows, tokens, changed neurons]: [1, 1, k] for one intervention on every row, [rows, 1, k]
    for rows under different interventions (1 where a row leaves a neuron be), [rows, tokens, 1] for integrated
    gradients' scaling of a whole layer. `where` [rows or 1, tokens] bool marks the positions changed (None: every
    position; LAST: each row's last one). `answers_only` edits take the `where` of each pass (`at`); others change
    every position whatever the pass says.
    """

    factors: Mapping[int, torch.Tensor] = field(default_factory=dict)
    columns: Mapping[int, torch.Tensor | None] = field(default_factory=dict)
    answers_only: bool = False
    where: torch.Tensor | str | None = None

    @staticmethod
    def of(lm: LoadedModel, iv: Intervention | None) -> Edit:
        """One intervention on every row of a pass (None, or no neurons: an edit that changes nothing)."""
        if iv is None or len(iv.neurons) == 0:
            return NO_EDIT
        _check_grid(lm, iv)
        factors, columns = {}, {}
        for layer, idx in iv.neurons.by_layer().items():
            device = activation_device(lm, layer)
            columns[layer] = torch.from_numpy(idx).to(device)
            # float32 factors (a bfloat16 1.3 would be 1.297)
            factors[layer] = torch.full((1, 1, len(idx)), iv.scale, dtype=torch.float32, device=device)
        return Edit(factors, columns, iv.answers_only)

    @staticmethod
    def rows(lm: LoadedModel, ivs: Sequence[Intervention | None], sizes: Sequence[int]) -> Edit:
        """Rows under different interventions in one batch: the first sizes[0] rows under ivs[0], the next sizes[1]
        under ivs[1], and so on (None: unmodified). For decoding steps, where every position predicts an answer
        token, so every position is changed whatever the interventions' `positions`."""
        n_rows = sum(sizes)
        parts: dict[int, list[tuple[int, int, np.ndarray, float]]] = {}  # per layer: (first row, rows, idx, scale)
        start = 0
        for iv, n in zip(ivs, sizes):
            if iv is not None and len(iv.neurons):
                _check_grid(lm, iv)
                for layer, idx in iv.neurons.by_layer().items():
                    parts.setdefault(layer, []).append((start, n, idx, iv.scale))
            start += n
        factors, columns = {}, {}
        for layer, edits in parts.items():
            cols = np.unique(np.concatenate([idx for _, _, idx, _ in edits]))
            factor = torch.ones((n_rows, 1, len(cols)), dtype=torch.float32)
            for first, n, idx, scale in edits:
                factor[first : first + n, 0, torch.from_numpy(np.searchsorted(cols, idx))] = scale
            device = activation_device(lm, layer)
            factors[layer], columns[layer] = factor.to(device), torch.from_numpy(cols).to(device)
        return Edit(factors, columns)

    @property
    def layers(self) -> list[int]:
        return sorted(self.factors)

    def at(self, where: torch.Tensor | str | None) -> Edit:
        """This edit for a pass whose answer positions are `where` ([rows or 1, tokens] bool; None: every position,
        as in a decoding step; LAST: each row's last position). Edits of every position ignore it."""
        return replace(self, where=where) if self.answers_only else self

    def keep(self, rows: torch.Tensor) -> Edit:
        """Only these rows stay in the batch (a decoding loop's rows that have not ended)."""
        pick = lambda t: t[rows.to(t.device)] if t.shape[0] > 1 else t  # noqa: E731 (one row serves every row)
        where = pick(self.where) if isinstance(self.where, torch.Tensor) else self.where
        return replace(self, factors={layer: pick(f) for layer, f in self.factors.items()}, where=where)

    def apply(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """x [rows, tokens, width] as this edit changes it at `layer`; a one-row x with per-row factors becomes one
        row per factor row (integrated gradients widens its batch inside the model this way)."""
        factor = self.factors[layer]  # made on the layer's device: no copy
        # float32 factors multiply in float32, rounded once to x's dtype; narrower ones (integrated gradients' on
        # a GPU, for speed) are taken in x's dtype
        factor = factor.to(x.device) if factor.dtype == torch.float32 else factor.to(x.device, x.dtype)
        columns = self.columns.get(layer)
        old = x if columns is None else x[..., columns.to(x.device)]
        new = old * factor
        if new.dtype != x.dtype:
            new = new.to(x.dtype)
        where = self.where
        if isinstance(where, str):  # LAST
            where = last_positions(x.shape[0], x.shape[1], x.device)
        if where is not None:
            new = torch.where(where.to(x.device).unsqueeze(-1), new, old)
        if columns is None:
            return new
        out = x.expand(new.shape[0], *x.shape[1:]).clone()
        out[..., columns.to(x.device)] = new
        return out


NO_EDIT = Edit()


def _check_grid(lm: LoadedModel, iv: Intervention) -> None:
    iv.neurons.grid.check_on(lm.grid, "The intervention's neurons")


@contextmanager
def edited(lm: LoadedModel, edit: Edit) -> Iterator[None]:
    """`edit` applied to the forward passes inside the block (a caller's pass), holding the model's lock."""
    with lm.lock:
        if not edit.factors:
            yield
            return
        with neuron_hooks(lm.ffn, edit.apply, layers=edit.layers):
            yield


@contextmanager
def intervene(lm: LoadedModel, iv: Intervention | None) -> Iterator[None]:
    """Apply iv to every forward pass inside the block (None: run the unmodified model), holding the model's lock.

    For passes that do not say where the answer is (a probe's), an answer-position
    intervention changes each row's last position: the one that predicts the next token (a prompt pass's first
    answer token, a decoding step's token). The library's own passes take an `Edit` and name the positions.
    """
    with lm.lock, edited(lm, Edit.of(lm, iv).at(LAST)):
        yield
