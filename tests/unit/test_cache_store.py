import json

import pytest
import torch

from cnl_core.locate.score_store import SCHEMA_VERSION, ScoreStore, clear_cache, list_cache

RECORD = {"model": "m", "dataset": "d", "grid": {"n_layers": 2, "width": 3}, "score": {"method": "activation"}}


def _write(store, ids):
    scores = torch.arange(len(ids) * 6, dtype=torch.float32).view(len(ids), 2, 3)
    store.write_shard(ids, scores, torch.zeros(len(ids)))
    return scores


def test_round_trip_and_key_depends_on_record(score_cache):
    store = ScoreStore(RECORD)
    store.ensure()
    scores = _write(store, ["a", "b"])
    got = store.load(["b", "zzz"])
    assert set(got) == {"b"} and torch.equal(got["b"][0].float(), scores[1])
    assert ScoreStore({**RECORD, "dataset": "other"}).key != store.key
    rec = json.loads((store.folder / "record.json").read_text())
    assert rec["schema"] == SCHEMA_VERSION == 2 and rec["model"] == "m"


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_shards_are_detected_and_set_aside(score_cache, damage):
    store = ScoreStore(RECORD)
    store.ensure()
    _write(store, ["a", "b"])
    (path,) = store.folder.glob("shard-*.safetensors")
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) - 7]
    elif damage == "flip":
        raw[-3] ^= 0xFF
    else:
        raw = bytearray(b"not a safetensors file at all")
    path.write_bytes(bytes(raw))
    fresh = ScoreStore(RECORD)
    assert fresh.load(["a", "b"]) == {}
    assert fresh.problems and "corrupt" in fresh.problems[0]
    assert not path.exists() and path.with_suffix(".corrupt").exists()


def test_half_written_temp_files_are_never_read(score_cache):
    store = ScoreStore(RECORD)
    store.ensure()
    (store.folder / ".shard-x.safetensors.123.part").write_bytes(b"half")
    assert store.shards() == []


def test_list_and_clear(score_cache):
    store = ScoreStore(RECORD)
    store.ensure()
    _write(store, ["a"])
    (entry,) = list_cache()
    assert entry["samples"] == 1 and entry["bytes"] > 0 and entry["dataset"] == "d"
    assert clear_cache() == 1 and list_cache() == []


def test_unwritable_cache_folder_is_a_clear_error(tmp_path, monkeypatch):
    from cnl_core.errors import CacheError

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CNL_CACHE_DIR", str(blocker))
    with pytest.raises(CacheError, match="cannot be written"):
        ScoreStore(RECORD).ensure()


def test_a_folder_whose_record_does_not_match_is_never_reused(score_cache):
    store = ScoreStore(RECORD)
    store.ensure()
    _write(store, ["a"])
    (store.folder / "record.json").write_text(json.dumps({"model": "someone else"}))
    fresh = ScoreStore(RECORD)
    fresh.ensure()
    assert fresh.load(["a"]) == {}
    assert any("another setup" in p for p in fresh.problems)
    assert json.loads((fresh.folder / "record.json").read_text())["model"] == "m"


def _rewrite(path, **meta_changes):
    """The shard at path written again with the same tensors and its metadata changed as given."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(path), framework="pt") as fh:
        meta = {**fh.metadata(), **meta_changes}
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    meta = {k: v for k, v in meta.items() if v is not None}
    save_file(tensors, str(path), metadata=meta)


def test_a_changed_sample_id_is_caught_by_the_checksum(score_cache):
    """Issue #25: the checksum covered the tensors only, so a changed id gave one sample another's scores."""
    store = ScoreStore(RECORD)
    store.ensure()
    _write(store, ["a", "b"])
    (path,) = store.folder.glob("shard-*.safetensors")
    _rewrite(path, sample_ids=json.dumps(["a", "c"]))
    fresh = ScoreStore(RECORD)
    assert fresh.load(["a", "b", "c"]) == {}
    assert len(fresh.problems) == 1 and "checksum" in fresh.problems[0] and "recomputed" in fresh.problems[0]
    assert path.with_suffix(".corrupt").exists()


@pytest.mark.parametrize("change", [{"schema": "9"}, {"extra": "x"}, {"checksum": "0" * 64}])
def test_every_metadata_field_is_covered(score_cache, change):
    store = ScoreStore(RECORD)
    store.ensure()
    _write(store, ["a"])
    (path,) = store.folder.glob("shard-*.safetensors")
    _rewrite(path, **change)
    assert ScoreStore(RECORD).load(["a"]) == {}


def test_shards_from_before_the_full_checksum_are_still_read_and_their_ids_checked(score_cache):
    """Old shards carry only the tensors' digest: they are read, their ids checked against the file name."""
    store = ScoreStore(RECORD)
    store.ensure()
    scores = _write(store, ["a", "b"])
    (path,) = store.folder.glob("shard-*.safetensors")
    _rewrite(path, checksum=None)  # as written by the previous version
    got = ScoreStore(RECORD).load(["a", "b"])
    assert set(got) == {"a", "b"} and torch.equal(got["b"][0].float(), scores[1])
    _rewrite(path, sample_ids=json.dumps(["b", "a"]))  # swapped ids, same tensors: caught by the name
    fresh = ScoreStore(RECORD)
    assert fresh.load(["a", "b"]) == {} and "checksum" in fresh.problems[0]


def test_a_cache_folder_gone_mid_run_is_one_cache_error_not_a_crash(score_cache):
    """safetensors raises its own SafetensorError (not an OSError) when the folder has become a file."""
    import shutil

    from cnl_core.errors import CacheError

    store = ScoreStore(RECORD)
    store.ensure()
    _write(store, ["a"])
    shutil.rmtree(store.folder)
    store.folder.write_text("a file where the folder was")
    with pytest.raises(CacheError, match="going on without caching"):
        _write(store, ["b"])
    assert store.folder.read_text() == "a file where the folder was"
