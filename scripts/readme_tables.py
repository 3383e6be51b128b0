"""Print the README's result tables (markdown) from the JSON files the configs in configs/ write to results/.

python -m cnl_core run configs/readme_figures.json && python -m cnl_core run configs/faithfulness.json
python scripts/readme_tables.py
"""

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"


def load(name: str):
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def ci(c, fmt="{:.3f}") -> str:
    return f"[{fmt.format(c[0])}, {fmt.format(c[1])}]" if c else ""


def locate_line(name: str) -> str:
    r = load(name)
    if r is None:
        return f"({name} missing)"
    pw = r["pairwise"][0]
    return (
        f"{r['n_located']} neurons; answers up to {r['params']['max_answer_tokens']} tokens "
        f"({r['truncated_answers']} of 100 cut); split overlap {pw['overlap_rate']:.3f}, IoU {pw['iou']:.3f} "
        f"(chance {pw['chance_iou']:.5f}, p = {pw['p_value']:.1e}; sets of {pw['size_a']} and {pw['size_b']})"
    )


def interventions() -> None:
    print("| tested on | model | accuracy | gold log-likelihood / token | change in log-likelihood |")
    print("|---|---|---|---|---|")
    for target in ("gsm8k", "arithmetic"):
        for mode in ("zero", "amplify"):
            r = load(f"gsm8k_{mode}_on_{target}.json")
            if r is None:
                continue
            verb = "zero" if mode == "zero" else "amplify x2"
            if mode == "zero":
                b = r["baseline"]
                print(
                    f"| {target} | unmodified | {b['accuracy']:.3f} {ci(b['accuracy_ci'])} | "
                    f"{b['gold_loglik']:.3f} {ci(b['gold_loglik_ci'])} |  |"
                )
            n = r["intervention"]["n_neurons"]
            for part, who in (
                ("intervened", f"{verb} the {n} located neurons"),
                ("control", f"{verb} random neurons ({len(r['control']['draws'])} draws)"),
            ):
                p = r[part]
                print(
                    f"| {target} | {who} | {p['accuracy']:.3f} {ci(p['accuracy_ci'])} | {p['gold_loglik']:.3f} "
                    f"{ci(p['gold_loglik_ci'])} | {p['delta_gold_loglik']:+.3f} "
                    f"{ci(p['delta_gold_loglik_ci'], '{:+.3f}')} |"
                )


def decoupling() -> None:
    d = load("decouple_gsm8k_imdb.json")
    if d is None:
        return
    print("| shared fraction f | IoU, rest from gsm8k (3 repeats) | IoU, rest from imdb (3 repeats) | chance IoU |")
    print("|---|---|---|---|")
    for f in d["fractions"]:
        row = {
            s: [p["iou"] for p in d["curve"] if p["fraction"] == f and p["replaceable"] == s] for s in ("same", "other")
        }
        chance = [p["chance_iou"] for p in d["curve"] if p["fraction"] == f]
        print(
            f"| {f:g} | "
            + " | ".join(f"{sum(v) / len(v):.2f} ({', '.join(f'{x:.2f}' for x in v)})" for v in row.values())
            + f" | {sum(chance) / len(chance):.5f} |"
        )


def specificity() -> None:
    s = load("specificity.json")
    if s is None:
        return
    print(f"Shared by all three: {len(s['shared_by_all'])} neurons. Held by exactly:")
    print("| sets | neurons |\n|---|---|")
    for k, v in s["counts"].items():
        print(f"| {k} | {v} |")
    print("\n| dataset | specific neurons | own effect | mean effect on the others | specificity index [95% CI] |")
    print("|---|---|---|---|---|")
    for name, ix in s["index"].items():
        print(
            f"| {name} | {len(s['specific'][name])} | {ix['own']:+.3f} | {ix['others']:+.3f} | "
            f"{ix['value']:+.3f} {ci(ix['ci'], '{:+.3f}')} |"
        )
    m = s["matrix"]
    print("\nChange of gold log-likelihood per token when zeroing (rows) on each test set (columns):\n")
    print("| zeroed | " + " | ".join(m["targets"]) + " |\n|---|" + "---|" * len(m["targets"]))
    for src in m["sources"]:
        cells = " | ".join(f"{m['cells'][src][t]['delta_gold_loglik']:+.3f}" for t in m["targets"])
        print(f"| {src} | " + cells + " |")


if __name__ == "__main__":
    for title, fn in (
        ("GSM8K answers cut at 128 tokens", lambda: print(locate_line("gsm8k_answers_cut_at_128.json"))),
        ("GSM8K full answers", lambda: print(locate_line("gsm8k_full_answers.json"))),
        ("interventions", interventions),
        ("decoupling", decoupling),
        ("specificity", specificity),
    ):
        print(f"\n### {title}\n")
        fn()


def capabilities() -> None:
    print(
        "| dataset | task | n | accuracy [95% CI] | chance | gold log-likelihood / token |\n|---|---|---|---|---|---|"
    )
    for path in sorted(RESULTS.glob("capability_*.json")):
        r = json.loads(path.read_text())
        b = r["baseline"]
        acc = "n/a (log-likelihood only)" if b["accuracy"] is None else f"{b['accuracy']:.3f} {ci(b['accuracy_ci'])}"
        print(
            f"| {r['dataset']} | {r['task_kind']} | {r['n']} | {acc} | {CHANCE.get(r['dataset'], '')} | "
            f"{b['gold_loglik']:.3f} |"
        )


CHANCE = {"imdb": "0.5", "tweet_sentiment": "0.33", "boolq": "0.5", "mmlu": "0.25", "commonsenseqa": "0.2"}

if __name__ == "__main__":
    print("\n### capabilities\n")
    capabilities()
