import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnl_core.data.samples import CHOICE, GENERATE_NUMBER, LOGLIK, MAX_UPLOAD_BYTES
from cnl_core.data.uploads import dataset_from_file, dataset_from_records, read_table
from cnl_core.errors import DatasetError


def test_csv_upload_with_labels(tmp_path):
    f = tmp_path / "s.csv"
    f.write_text("text,label\ngreat film,positive\nawful,negative\ngreat film,positive\n,negative\nmeh,unknown\n")
    spec, report = dataset_from_file(f, "text", "label", labels=["negative", "positive"])
    assert spec.kind == CHOICE and len(spec.rows()) == 2
    assert report == {"rows_in_file": 5, "missing": 1, "duplicates": 1, "unknown_label": 1, "rows_used": 2}
    assert spec.rows()[0].choices == (" negative", " positive")


def test_jsonl_numeric_answers_become_a_generation_task(tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_text("\n".join(json.dumps({"q": f"Question: {i}+1?\nAnswer:", "a": str(i + 1)}) for i in range(5)))
    spec, _ = dataset_from_file(f, "q", "a")
    assert spec.kind == GENERATE_NUMBER and spec.rows()[2].target == "3"
    spec2, _ = dataset_from_records([{"q": "x", "a": "some code"}], "codeish", "q", "a")
    assert spec2.kind == LOGLIK


NASTY = [
    (b"", "empty"),
    (b"\x00\x01\x02binary\x00", "binary"),
    (b"text,label\n\xff\xfe bad,1\n", "not UTF-8"),
    (b"a,b\n1,2\n", "Column 'text'"),
    (b'{"text": "x"\n', "not valid JSON"),
    (b'[1, 2]\n', "JSON object"),
    (b"text,label\n,\n,\n", "No usable rows"),
]


@pytest.mark.parametrize("data,message", NASTY)
def test_nasty_files_give_clear_errors(tmp_path, data, message):
    name = "f.jsonl" if data.startswith((b"{", b"[")) else "f.csv"
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(DatasetError, match=message):
        dataset_from_file(f, "text", "label")


def test_huge_file_and_wrong_type_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="limit"):
        read_table(b"x" * (MAX_UPLOAD_BYTES + 1), "big.csv")
    with pytest.raises(DatasetError, match="Unsupported"):
        read_table(b"x,y\n", "model.pkl")


def test_formula_cells_are_kept_as_plain_text(tmp_path):
    f = tmp_path / "f.csv"
    f.write_text('text,label\n"=HYPERLINK(""http://x"")",positive\n+1+1,negative\n')
    spec, _ = dataset_from_file(f, "text", "label", labels=["negative", "positive"])
    assert spec.rows()[0].prompt == '=HYPERLINK("http://x")'  # data only: nothing evaluates it


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2000), st.sampled_from(["u.csv", "u.jsonl", "u.tsv"]))
def test_fuzzed_bytes_never_crash_with_anything_but_a_dataset_error(data, name):
    try:
        records = read_table(data, name)
        dataset_from_records(records, "fuzz", "text", "label")
    except DatasetError:
        pass


def test_header_only_nested_values_and_commas_in_free_text(tmp_path):
    with pytest.raises(DatasetError, match="no rows"):
        read_table(b"question,answer\n", "x.csv")
    with pytest.raises(DatasetError, match="field 'meta' holds a nested object"):
        read_table(b'{"q": "a", "meta": {"k": 1}}\n', "x.jsonl")
    records = [{"q": f"Describe item {i}", "a": f"red, round, and sweet {i}"} for i in range(3)]
    spec, _ = dataset_from_records(records, "commas", "q", "a", kind="loglik")
    assert spec.rows()[0].target == "red, round, and sweet 0"  # free text keeps its commas
    spec, _ = dataset_from_records([{"q": "How many?", "a": "1,234"}], "numbers", "q", "a")
    assert spec.rows()[0].target == "1234"  # a number loses its thousands separator


@pytest.mark.parametrize("cell,escaped", [("=1+1", True), ("  =HYPERLINK(x)", True), ("\n@SUM(A1)", True),
                                          ("＝1+1", True), ("－2+3", True), ("\tcmd", True), ("-0.25", False),
                                          ("plain text", False), (" spaced text", False)])
def test_every_spreadsheet_formula_trigger_is_neutralised(cell, escaped):
    from cnl_core.report.exports import safe_cell

    assert (safe_cell(cell) == "'" + cell) is escaped
