"""The answer-format control and the empirical null on the built-in model, and the `knowledge` CLI."""

import json

import pytest

from cnl_core.experiments.empirical_null import empirical_null
from cnl_core.experiments.format_control import format_token_probability
from cnl_core.locate.select import LocateParams
from cnl_core.model.hooks import Intervention
from cnl_core.model.neurons import NeuronSet
from cnl_core.serialize import to_data


def test_the_format_token_is_almost_certain_and_its_probability_moves_under_zeroing(lm):
    shots = "Question: What is 1 + 1?\nAnswer: 2\n\nQuestion: What is 3 + 4?\nAnswer: 7\n\n"  # as the demo asks
    prompts = [f"{shots}Question: What is {a} + {b}?\nAnswer:" for a, b in ((2, 3), (4, 1), (6, 2))]
    grid = lm.grid
    wide = NeuronSet.from_pairs(grid, [[layer, i] for layer in range(0, 8) for i in range(0, 1536, 3)])
    out = format_token_probability(
        lm, prompts, " ", {"unmodified": None, "zeroed": Intervention(wide, "zero")}, draws=50
    )
    assert out["unmodified"]["p"] > 0.9  # " 5" starts with a bare space token
    assert out["zeroed"]["p"] < out["unmodified"]["p"] - 0.05
    assert out["unmodified"]["ci"][0] <= out["unmodified"]["p"] <= out["unmodified"]["ci"][1]


@pytest.mark.parametrize("kind,other", [("unrelated", "successor"), ("shuffled", None)])
def test_empirical_null_compares_every_pair_of_sets(lm, score_cache, kind, other):
    res = empirical_null(lm, "add1_content", kind, other, n=3, draws=1, seed=0, params=LocateParams(tau=0.1))
    assert len(res.ious) == 1 and 0.0 <= res.ious[0] <= 1.0 and res.chance_ious[0] < 0.01
    assert to_data(res)["kind"] == "cnl.empirical_null" and "empirical null" in res.describe()


def test_knowledge_cli_reads_a_facts_csv(tmp_path, score_cache, capsys):
    from cnl_core.cli import main
    from cnl_core.errors import DatasetError

    csv = tmp_path / "facts.csv"
    csv.write_text(
        "subject,relation,answer,templates\nJapan,capital,Tokyo,The capital of {subject} is | "
        "{subject}'s capital is\nFrance,capital,Paris,\nAtlantis,capital,Zorblax,\n",
        encoding="utf-8",
    )
    out = tmp_path / "known.json"
    main(["knowledge", "facts", "--facts-csv", str(csv), "--shots", "1", "--out", str(out)], exit_on_error=False)
    data = json.loads(out.read_text())
    assert data["known"] == ["capital/France"] and "1 of 2 facts known" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="Could not read the facts file"):
        main(["knowledge", "facts", "--facts-csv", str(tmp_path / "missing.csv")], exit_on_error=False)
