"""Answer positions (model/positions.py): the one place that says which token of a prompt predicts its answer."""

import torch

from cnl_core.model.hooks import LAST, Edit
from cnl_core.model.positions import answer_span, answer_start, generated_positions, last_positions


def test_the_answer_span_starts_at_the_last_prompt_token_and_is_read_back():
    mask = torch.zeros((2, 7), dtype=torch.bool)
    mask[0, answer_span(3, 5)] = True  # prompt of 3 tokens, answer of 2
    mask[1, answer_span(5, 7)] = True
    assert mask[0].nonzero().squeeze(1).tolist() == [2, 3]
    assert answer_start(mask).tolist() == [2, 4]
    assert generated_positions(3, 5).tolist() == [[False, False, True, True, True]]  # and the next token's


def test_a_pass_without_answer_positions_changes_each_rows_last_position():
    assert last_positions(2, 3).tolist() == [[False, False, True]] * 2
    x = torch.ones((2, 3, 4))
    edit = Edit({0: torch.full((1, 1, 4), 2.0)}, {0: None}, answers_only=True).at(LAST)
    assert edit.apply(0, x)[:, :, 0].tolist() == [[1.0, 1.0, 2.0]] * 2
