import pytest

from cnl_core.data.hub import emotion_sample, load_hub_rows, metamath_sample
from cnl_core.data.samples import CHOICE, GENERATE_NUMBER, LOGLIK, get_dataset, list_datasets
from cnl_core.errors import DatasetError

OFFLINE = {
    "gsm8k": 1319,
    "asdiv": None,
    "imdb": 200,
    "arithmetic": 2000,
    "humaneval": 164,
    "tweet_sentiment": None,
    "mmlu": 2850,
    "boolq": 3270,
    "commonsenseqa": 1221,
}


@pytest.mark.parametrize("name,rows", OFFLINE.items())
def test_offline_dataset_rows_and_gold_answers_parse(name, rows):
    ds = get_dataset(name)
    assert ds.available()[0]
    data = ds.rows()
    if rows:
        assert len(data) == rows
    assert len({s.id for s in data}) == len(data)
    for s in data[:200]:
        assert s.prompt and s.answer
        if ds.kind == GENERATE_NUMBER:
            float(s.target)  # numeric gold answer
        if ds.kind == CHOICE:
            assert s.target in s.choices and s.answer == s.target
    assert ds.kind in (GENERATE_NUMBER, CHOICE, LOGLIK)


def test_gsm8k_gold_answer_is_the_number_after_hashes():
    s = get_dataset("gsm8k").rows()[0]
    assert s.target == "18" and s.answer.rstrip().endswith("#### 18")
    assert s.prompt.startswith("Question: ") and s.prompt.endswith("\nAnswer:")


def test_hub_datasets_are_listed_and_unavailable_offline(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets"))  # nothing cached
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    names = {d.name for d in list_datasets() if d.hub}
    assert names == {"metamath", "code25k", "emotion", "imdb_full"}
    assert get_dataset("emotion").available()[0] is False


def test_hub_loader_maps_a_local_file_of_the_same_shape(tmp_path):
    f = tmp_path / "mm.jsonl"
    f.write_text(
        '{"query": "What is 2+3?", "response": "2+3=5. The answer is: 5"}\n'
        '{"query": "bad", "response": "no final answer"}\n'
    )
    rows = load_hub_rows("meta-math/MetaMathQA", "train", metamath_sample, data_files=str(f))
    assert len(rows) == 1 and rows[0].target == "5"
    e = tmp_path / "emo.jsonl"
    e.write_text('{"text": "i feel great", "label": 1}\n')
    (row,) = load_hub_rows("dair-ai/emotion", "test", emotion_sample, data_files=str(e))
    assert row.target == " joy" and len(row.choices) == 6


def test_unknown_dataset_is_a_clear_error():
    with pytest.raises(DatasetError, match="Unknown dataset"):
        get_dataset("nope")
