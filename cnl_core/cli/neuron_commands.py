"""The CLI's neuron-level commands: inspect one neuron, and steer a prompt with a located set on and off."""

from __future__ import annotations

import argparse

from .. import fields as F
from ..errors import ParameterError
from ..evaluate.steer import check_prompt
from ..experiments.locate_result import LocateResult
from ..experiments.requests import SteerRequest
from ..experiments.requests_studies import TOP_EXAMPLES, InspectRequest
from ..inspect.neuron import neuron_ranks, parse_neuron
from ..options import DEFAULTS, INTERVENTION_MODES
from ..serialize import to_data
from . import arguments as A
from .commands import command_model, on_model, write_result


def cmd_inspect(args) -> dict:
    layer, index = parse_neuron(args.neuron)
    datasets = [A.dataset(args, name) for name in (args.dataset or [DEFAULTS.dataset])]
    located = [LocateResult.read(f) for f in args.neurons or []]
    lm = command_model(args, located, (layer, index))
    sets = {f"{r.model}:{r.dataset}": (on_model(r, lm), [(t.layer, t.index) for t in r.top_neurons]) for r in located}
    rep = InspectRequest(layer, index, tuple(datasets), args.n, args.seed, args.top).run(lm)
    rep.ranks = neuron_ranks(sets, layer, index)
    print(f"neuron {layer}:{index} of {rep.model}")
    print("  promotes: " + ", ".join(f"{t.token!r} {t.logit:+.2f}" for t in rep.vocab_top[:10]))
    print("  suppresses: " + ", ".join(f"{t.token!r} {t.logit:+.2f}" for t in rep.vocab_bottom[:10]))
    for name, st in rep.stats.items():
        print(
            f"  {name}: fires on {100 * st.firing_rate:.1f}% of {st.tokens} tokens; mean {st.mean:+.4f}, "
            f"p99 {st.quantiles['p99']:+.4f}, max {st.max:+.4f}"
        )
    for ex in rep.top_examples:
        peak = ex.activations.index(ex.max_activation)
        print(f"  {ex.sample_id}: max {ex.max_activation:+.3f} at {ex.tokens[peak]!r}")
    for name, r in rep.ranks.items():
        print(f"  in {name}: rank {r['rank'] or '>' + str(r['listed'])} of {r['of']}")
    out = to_data(rep)
    write_result(args.out, out)
    return out


def cmd_steer(args) -> dict:
    located = LocateResult.read(args.neurons)
    lm = command_model(args, [located])
    neurons = on_model(located, lm)
    iv = A.intervention(args, neurons)
    res = SteerRequest(args.prompt, iv, args.max_new_tokens, args.seed).run(lm)
    for name, answer in res.answers.items():
        print(f"--- {name}: {answer.text!r}")
    changes = to_data(res)["baseline_tokens_logprob_change"]
    if changes.get("intervened"):
        print(
            "log-probability change of the baseline's tokens when intervened: "
            + " ".join(f"{t!r}:{c:+.2f}" for t, c in zip(res.answers["baseline"].tokens, changes["intervened"]))
        )
    out = to_data(res)
    write_result(args.out, out)
    return out


def _prompt(text: str) -> str:
    """argparse `type=` for --prompt: an empty prompt is refused while the command line is read."""
    try:
        return check_prompt(text)
    except ParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_parsers(sub) -> None:
    p = sub.add_parser("inspect", help="one neuron: activations per dataset, top examples, vocabulary projection")
    A.add_model(p)
    A.add_dataset_file(p)
    p.add_argument("--neuron", required=True, help="LAYER:INDEX, e.g. 12:345")
    p.add_argument("--dataset", action="append", help="a dataset name or CSV/JSONL file (repeat for several)")
    p.add_argument("--n", type=F.INSPECT_N.arg, default=DEFAULTS.inspect_n, help="samples per dataset")
    p.add_argument("--seed", type=F.SEED.arg, default=DEFAULTS.seed)
    p.add_argument("--top", type=F.TOP_EXAMPLES.arg, default=TOP_EXAMPLES, help="top activating samples to keep")
    p.add_argument("--neurons", nargs="*", help="locate results: the neuron's rank in each")
    p.add_argument("--out")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("steer", help="a prompt answered with the located neurons on, off/up, and a random control")
    A.add_model(p)
    p.add_argument("--prompt", required=True, type=_prompt)
    p.add_argument("--neurons", required=True, help="a locate result JSON")
    p.add_argument("--intervention", default=INTERVENTION_MODES[0], choices=INTERVENTION_MODES)
    p.add_argument("--factor", type=F.FACTOR.arg, default=DEFAULTS.amplify_factor)
    A.add_positions(p)
    p.add_argument("--max-new-tokens", type=F.STEER_TOKENS.arg, default=DEFAULTS.steer_tokens)
    p.add_argument("--seed", type=F.SEED.arg, default=DEFAULTS.seed, help="the random control's draw")
    p.add_argument("--out")
    p.set_defaults(func=cmd_steer)
