"""Issue #32: a visitor's task YAML is read against an allowlist. Each row is a hostile class tried on the lab
(code through a metric name, server files, writes outside, unbounded work, URLs) and the sentence that refuses
it, naming the key and its line; the last row's plain task is accepted. docs/safety.md's table lists them."""

from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

from cnl_core.errors import HarnessError  # noqa: E402
from cnl_core.evaluate.task_allowlist import read_allowed_task  # noqa: E402

BASE = """task: my_sums
dataset_path: json
dataset_kwargs:
  data_files:
    test: d.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{q}}"
doc_to_target: "{{a}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

HOSTILE = [
    # class, the YAML change, what the refusal says
    (
        "code: unknown metric -> evaluate.load",
        ("metric: exact_match", "metric: ./evil.py"),
        r"metric_list\[0\]\.metric \(line 14\) is './evil.py', not a metric of lm-eval's own registry",
    ),
    ("code: Hub metric script", ("metric: exact_match", "metric: someone/metric"), "not a metric of lm-eval's own"),
    (
        "code: custom filter",
        ("metric_list:", "filter_list:\n  - name: x\n    filter:\n      - function: custom\nmetric_list:"),
        r"filter_list\[0\]\.filter\[0\]\.function \(line 16\)",
    ),
    ("code: !function", ('doc_to_text: "{{q}}"', "doc_to_text: !function utils.fn"), "line 8.*could run code"),
    (
        "code: process_docs",
        ("test_split: test", "test_split: test\nprocess_docs: utils.fn"),
        r"process_docs \(line 7\) is not read here",
    ),
    (
        "code: Hub dataset script",
        ("dataset_path: json", "dataset_path: someone/dataset"),
        r"dataset_path \(line 2\) is 'someone/dataset'",
    ),
    ("server file: file:// URL", ("test: d.jsonl", "test: file:///etc/passwd"), r"\(line 5\) names a URL"),
    ("server file: absolute path", ("test: d.jsonl", "test: /etc/passwd"), "not a file uploaded with it"),
    ("other visitor: glob", ("test: d.jsonl", "test: ../*/uploads/*.csv"), "not a file uploaded with it"),
    ("remote: :: chain", ("test: d.jsonl", "test: zip://a.csv::d.jsonl"), "names a URL"),
    (
        "writes outside: cache_dir",
        ("  data_files:", "  cache_dir: /tmp/x\n  data_files:"),
        r"dataset_kwargs\.cache_dir \(line 4\) is not read here",
    ),
    ("include outside", ("task: my_sums", "task: my_sums\ninclude: /etc/x.yaml"), r"include \(line 2\) is not read"),
    ("remote code flag", ("test_split: test", "test_split: test\ntrust_remote_code: true"), "is not read here"),
    ("unbounded: max_gen_toks", ("max_gen_toks: 8", "max_gen_toks: 10000000"), r"max_gen_toks \(line 12\) is "),
    ("unbounded: repeats", ("test_split: test", "test_split: test\nrepeats: 100000"), r"repeats \(line 7\) is 100000"),
    ("unbounded: sampling", ("max_gen_toks: 8", "max_gen_toks: 8\n  do_sample: true"), "must be false here"),
    (
        "unbounded: template size",
        ('doc_to_text: "{{q}}"', 'doc_to_text: "' + "x" * 5000 + '"'),
        "is 5,000 characters long",
    ),
    (
        "unbounded: YAML aliases",
        ('doc_to_target: "{{a}}"', 'doc_to_target: &a "{{a}}"\ndescription: *a'),
        "YAML aliases",
    ),
]


@pytest.fixture()
def write(tmp_path):
    def write(text: str) -> Path:
        path = tmp_path / "t.yaml"
        path.write_text(text)
        return path

    return write


@pytest.mark.parametrize("what,change,words", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_every_hostile_class_is_refused_by_key_and_line(write, what, change, words):
    old, new = change
    assert old in BASE
    with pytest.raises(HarnessError, match=words) as caught:
        read_allowed_task(write(BASE.replace(old, new, 1)), "t.yaml", {"d.jsonl"})
    assert (
        str(caught.value).startswith("The task file t.yaml is refused here")
        or "could run code" in str(caught.value)
        or "aliases" in str(caught.value)
    )


def test_a_plain_data_only_task_is_read_as_its_data(write):
    data = read_allowed_task(write(BASE), "t.yaml", {"d.jsonl"})
    assert data["dataset_kwargs"] == {"data_files": {"test": "d.jsonl"}}
    assert data["metric_list"][0]["metric"] == "exact_match" and data["generation_kwargs"]["max_gen_toks"] == 8


def test_malformed_task_files_get_a_sentence_not_an_unexpected_error(write):
    """Files that ended in 'Unexpected error: <Python exception>' before: each is a HarnessError sentence."""
    for text in (
        "[1, 2]",
        "task: [",
        "task: x\n",
        "task: 3\ndataset_path: json\n",
        "\t- x",
        "dataset_path: json\n",
        "task: x\ndataset_path: json\nmetric_list: acc\n",
        "task: x\ndataset_path: json\nnum_fewshot: x\n",
        "task: x\ndataset_path: json\nmetric_list:\n  - 3\n",
        "task: x\ndataset_path: json\n3: x\n",
        "task: x\ndataset_path: json\ndataset_kwargs:\n  data_files: {3: d.jsonl}\n",
    ):
        with pytest.raises(HarnessError, match="The task file t.yaml"):
            read_allowed_task(write(text), "t.yaml", {"d.jsonl"})


def test_the_documented_example_task_passes_as_an_upload():
    """docs/lm-eval-example's task (generation, a regex filter, exact_match) is what a visitor would upload."""
    example = Path(__file__).resolve().parents[2] / "docs" / "lm-eval-example" / "add1_heldout.yaml"
    data = read_allowed_task(example, example.name, {"add1_heldout.jsonl"})
    assert data["task"] == "add1_heldout" and data["filter_list"][0]["filter"][0]["function"] == "regex"
    with pytest.raises(HarnessError, match="not a file uploaded with it"):
        read_allowed_task(example, example.name, set())
