import pytest

from cnl_core.evaluate.answers import cut_at_stop, extract_flexible, extract_strict, is_correct

CASES = [
    # (generated text, strict extraction, flexible extraction)
    ("She makes 9 * 2 = $18.\n#### 18", "18", "18"),
    ("#### 1,234", "1234", "1234"),
    ("The total is $1,000.", None, "1000"),
    ("It drops to -5 degrees.", None, "-5"),
    ("#### -42", "-42", "-42"),
    ("Answer: 3.5 hours.", None, "3.5"),
    ("no number here", None, None),
    ("first 3 then 7.", None, "7"),
    ("#### 12.", "12", "12"),
]


@pytest.mark.parametrize("text,strict,flexible", CASES)
def test_extraction_table(text, strict, flexible):
    assert extract_strict(text) == strict
    assert extract_flexible(text) == flexible


def test_correctness_compares_normalized_strings():
    assert is_correct(extract_flexible("that is $1,234."), "1234")
    assert not is_correct(extract_flexible("that is 1233"), "1234")
    assert not is_correct(None, "3")


def test_generation_is_cut_at_the_next_question():
    assert cut_at_stop(" 5 apples.\n\nQuestion: how many") == " 5 apples.\n\n"
    assert cut_at_stop("plain") == "plain"
