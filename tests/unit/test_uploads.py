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
    (b"[1, 2]\n", "JSON object"),
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


@pytest.mark.parametrize(
    "cell,escaped",
    [
        ("=1+1", True),
        ("  =HYPERLINK(x)", True),
        ("\n@SUM(A1)", True),
        ("＝1+1", True),
        ("－2+3", True),
        ("\tcmd", True),
        ("-0.25", False),
        ("plain text", False),
        (" spaced text", False),
    ],
)
def test_every_spreadsheet_formula_trigger_is_neutralised(cell, escaped):
    from cnl_core.report.exports import safe_cell

    assert (safe_cell(cell) == "'" + cell) is escaped


# Issue #25: the files that were refused with misleading messages, or read wrongly, and the memory an upload takes.


@pytest.mark.parametrize(
    "data,name",
    [
        (b"q,a\r1+1?,2\r2+2?,4\r", "cr-only.csv"),  # classic Mac line endings
        ("q,a\n1+1?,2\n2+2?,4\n".encode("utf-16"), "utf16.csv"),  # a spreadsheet's "Unicode text"
        ("q,a\n1+1?,2\n2+2?,4\n".encode("utf-32"), "utf32.csv"),
        (b"\xef\xbb\xbfq,a\n1+1?,2\n2+2?,4\n", "bom.csv"),
    ],
)
def test_other_line_endings_and_unicode_encodings_are_read(data, name):
    assert read_table(data, name) == [{"q": "1+1?", "a": "2"}, {"q": "2+2?", "a": "4"}]


def test_line_and_paragraph_separators_inside_a_jsonl_string_are_text_not_line_breaks():
    text = "first\u2028second\u0085third\u2029fourth"
    data = (json.dumps({"q": text, "a": "1"}, ensure_ascii=False) + "\n").encode()
    assert read_table(data, "x.jsonl") == [{"q": text, "a": "1"}]


@pytest.mark.parametrize(
    "data,name,words",
    [
        (b"q,a,q\n1,2,3\n", "x.csv", "names the column 'q' twice \\(columns 1 and 3\\)"),
        (b'{"q": 1, "q": 2, "a": 3}\n', "x.jsonl", "Line 1: the field 'q' is given twice"),
        ("q,a\n1,2\n".encode("utf-16-le"), "x.csv", "UTF-16 text without a byte-order mark"),
    ],
)
def test_ambiguous_files_are_refused_naming_the_problem(data, name, words):
    with pytest.raises(DatasetError, match=words):
        read_table(data, name)


def test_rows_and_columns_are_bounded(monkeypatch):
    from cnl_core import fields as F

    monkeypatch.setattr(F, "UPLOAD_ROWS", 3)
    with pytest.raises(DatasetError, match="more than 3 rows"):
        read_table(b"q,a\n" + b"x,1\n" * 4, "x.csv")
    assert len(read_table(b"q,a\n" + b"x,1\n" * 3, "x.csv")) == 3
    with pytest.raises(DatasetError, match="201 columns; the limit is 200"):
        read_table((",".join(f"c{i}" for i in range(201)) + "\n" + "1," * 200 + "1\n").encode(), "x.csv")


def test_an_upload_is_read_row_by_row_and_the_session_keeps_no_rows(tmp_path):
    """A 46 MB CSV took 3.3 GB to parse; here a 5 MB one must stay far below its own size in Python objects."""
    import pickle
    import tracemalloc

    from ui.session import new_session
    from ui.tabs import data_tab

    path = tmp_path / "big.csv"
    with path.open("w") as fh:
        fh.write("q,a,b,c,d,e\n")
        for i in range(150_000):
            fh.write(f"q{i},{i},b,c,d,e\n")
    state = new_session()
    tracemalloc.start()
    try:
        prompt, answer, preview, state = data_tab.inspect_upload(str(path), state)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert prompt["choices"] == ["q", "a", "b", "c", "d", "e"] and len(preview) == 5
    assert peak < path.stat().st_size  # parsed whole, 150,000 dicts would take about 20 times the file
    assert len(pickle.dumps(state)) < 100_000  # the session holds where the file is, not its rows
    msg, *_, state = data_tab.add_upload("big", "q", "a", "", "{prompt}", [], state)
    assert "150000 rows used" in msg


def test_uploaded_datasets_belong_to_the_session_and_go_when_it_ends(tmp_path, monkeypatch):
    from cnl_core import fields as F
    from cnl_core.data.samples import get_dataset, list_datasets
    from ui.session import new_session
    from ui.tabs import data_tab

    monkeypatch.setattr(F, "SESSION_UPLOADS", 2)
    path = tmp_path / "u.csv"
    path.write_text("q,a\nWhat is 1+1?,2\n")
    state, other = new_session(), new_session()
    for name in ("one", "two", "three"):
        *_, state = data_tab.inspect_upload(str(path), state)
        msg, choices, _, state = data_tab.add_upload(name, "q", "a", "", "{prompt}", [], state)
    assert "Set aside to stay within 2 uploaded datasets" in msg and len(state.uploads) == 2
    *_, other = data_tab.inspect_upload(str(path), other)
    data_tab.add_upload("theirs", "q", "a", "", "{prompt}", [], other)
    public = {d.name for d in list_datasets()}
    assert not public & set(state.uploads + other.uploads)  # nobody else's list shows them
    kept = list(state.uploads)
    state.end()
    for name in kept:
        with pytest.raises(DatasetError, match="Unknown dataset"):
            get_dataset(name)
    assert get_dataset(other.uploads[0]).rows()  # another visitor's upload stays
    other.end()
