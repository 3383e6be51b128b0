"""Nothing lost (issue #25, part 3): outputs checked before the work, atomic writes, a cache that only clears
itself, run configs checked whole, and bad prompts or neurons refused before the model loads."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cnl_core.cli import commands, main
from cnl_core.errors import NeuronSetError, OutputError, ParameterError
from cnl_core.locate.score_store import clear_cache, list_cache
from cnl_core.serialize import to_data
from tests.unit.test_results import result

ROOT = Path(__file__).resolve().parents[2]
UNWRITABLE = "/proc/cnl-no-such-folder"  # not even root can create files in /proc


@pytest.fixture()
def no_model(monkeypatch):
    """Any model load fails the test: what is checked here must be refused before one."""

    def loaded(*args, **kwargs):
        raise AssertionError("the model was loaded before the input was refused")

    monkeypatch.setattr(commands.MODELS, "get", loaded)


def _neuron_file(tmp_path, name="a.json", grid=None) -> Path:
    data = to_data(result())
    if grid:
        data["grid"] = grid
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


# --- results are written atomically ------------------------------------------------------------------------

_FULL_DISK = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    import altair as alt
    import pandas as pd
    from cnl_core.experiments.json_io import write_json
    from cnl_core.report.charts import save_chart
    from cnl_core.report.exports import to_safe_csv

    folder = Path(sys.argv[1])
    big = pd.DataFrame({"x": range(3000), "y": [f"row {i}" for i in range(3000)]})
    writers = {"result.json": lambda p: write_json(p, {"rows": list(range(5000))}),
               "table.csv": lambda p: to_safe_csv(big, p),
               "chart.svg": lambda p: save_chart(
                   alt.Chart(big.head(200)).mark_point().encode(x="x", y="y"), str(p), "svg"
               )}
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    out = {}
    for name, write in writers.items():
        try:
            write(folder / name)
            out[name] = "written"
        except Exception as exc:
            out[name] = f"{'sentence' if type(exc).__module__.startswith('cnl_core') else 'crash'}: {exc}"
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    print(json.dumps(out))
""")


def test_a_write_that_runs_out_of_disk_keeps_the_earlier_file(tmp_path):
    """A result, a CSV and a chart each replace a good earlier file; the disk fills up 4 KiB into each write."""
    old = {
        name: (json.dumps({"good": "x" * 9000}) if name.endswith("json") else "good,old\n" * 1000)
        for name in ("result.json", "table.csv", "chart.svg")
    }
    for name, text in old.items():
        (tmp_path / name).write_text(text)
    child = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    for name, text in old.items():
        assert (tmp_path / name).read_text() == text, f"{name}: the earlier file was damaged"
        assert outcome[name].startswith("sentence: Could not write") and str(tmp_path / name) in outcome[name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(old)  # no temporary file left behind


def test_a_converted_model_folder_is_on_disk_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    """The built-in model's conversion renames a whole folder into place; sync_tree flushes it first."""
    import cnl_core.output_files as out
    from cnl_core.model import builtin_model

    (tmp_path / "sub").mkdir()
    for name in ("config.json", "model.safetensors", "sub/tokenizer.json"):
        (tmp_path / name).write_text(name)
    synced = []
    real = os.fsync
    monkeypatch.setattr(out.os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    out.sync_tree(tmp_path)
    assert sorted(synced) == sorted(
        [str(tmp_path / n) for n in ("config.json", "model.safetensors", "sub/tokenizer.json")] + [str(tmp_path)]
    )
    assert builtin_model.sync_tree is out.sync_tree  # the conversion uses it


# --- output paths are checked before the work ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make_out,message",
    [
        (lambda d: d / "a-file" / "out.json", "is a file, not a folder"),
        (lambda d: d, "is a folder"),
        (lambda d: Path(UNWRITABLE) / "out.json", "cannot be written"),
        (lambda d: "", "is not a file name"),
        (lambda d: d / ("x" * 300 + ".json"), "cannot be used .File name too long"),
    ],
)
def test_an_unwritable_out_is_refused_before_the_model_loads(tmp_path, no_model, make_out, message):
    (tmp_path / "a-file").write_text("x")
    out = str(make_out(tmp_path))
    with pytest.raises(OutputError, match=message) as err:
        main(["evaluate", "--dataset", "add1", "--n", "1", "--out", out], exit_on_error=False)
    assert "--out" in str(err.value) and out[:200] in str(err.value)


@pytest.mark.parametrize(
    "make_dir,message",
    [
        (lambda d: d / "a-file", "is a file, not a folder"),
        (lambda d: d / "a-file" / "exports", "is a file, not a folder"),
        (lambda d: Path(UNWRITABLE), "cannot be written"),
    ],
)
def test_an_unwritable_export_folder_is_refused_before_anything_is_written(tmp_path, make_dir, message):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(OutputError, match=message):
        main(["export", str(_neuron_file(tmp_path)), "--out-dir", str(make_dir(tmp_path))], exit_on_error=False)
    assert (tmp_path / "a-file").read_text() == "x"


def test_exports_write_atomically_into_a_new_folder(tmp_path):
    main(["export", str(_neuron_file(tmp_path)), "--out-dir", str(tmp_path / "new" / "exports")], exit_on_error=False)
    names = {p.name for p in (tmp_path / "new" / "exports").iterdir()}
    assert "located_m_d_a.json" in names and not [n for n in names if n.endswith(".part")]


# --- the score cache only ever clears its own entries -------------------------------------------------------


@pytest.fixture()
def cache_with_neighbours(tmp_path, monkeypatch):
    """A cache with a score entry, converted models and uploads beside the scores, and a folder outside it."""
    cache = tmp_path / "cache"
    for folder in ("scores/0123456789abcdef0123", "models/m", "uploads"):
        (cache / folder).mkdir(parents=True)
        (cache / folder / "keep").write_text("data")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_text("data")
    (cache / "scores" / "link").symlink_to(tmp_path / "outside")
    monkeypatch.setenv("CNL_CACHE_DIR", str(cache))
    return cache


@pytest.mark.parametrize(
    "key", ["..", "../models", "../..", "/", "TMP/outside", "link", "", ".", "scores/..", "a\0b", "nope"]
)
def test_cache_clear_refuses_any_key_that_is_not_an_entry(cache_with_neighbours, key):
    key = key.replace("TMP", str(cache_with_neighbours.parent))
    with pytest.raises(ParameterError, match="--key"):
        main(["cache", "clear", "--key", key], exit_on_error=False)
    kept = sorted(str(p.relative_to(cache_with_neighbours.parent)) for p in cache_with_neighbours.parent.rglob("keep"))
    assert kept == [
        "cache/models/m/keep",
        "cache/scores/0123456789abcdef0123/keep",
        "cache/uploads/keep",
        "outside/keep",
    ]


def test_cache_clear_removes_entries_and_leaves_links_alone(cache_with_neighbours):
    assert [e["key"] for e in list_cache()] == ["0123456789abcdef0123"]
    assert main(["cache", "clear", "--key", "0123456789abcdef0123"], exit_on_error=False) == {"removed": 1}
    (cache_with_neighbours / "scores" / "other").mkdir()
    assert clear_cache() == 1  # every entry: the link is neither followed nor removed
    assert (cache_with_neighbours / "scores" / "link").is_symlink()
    assert (cache_with_neighbours.parent / "outside" / "keep").exists()
    assert (cache_with_neighbours / "models" / "m" / "keep").exists()


# --- run configs are checked whole before step 1 ------------------------------------------------------------


def _config(tmp_path, steps, name="run.json", text=None) -> str:
    path = tmp_path / name
    path.write_text(text if text is not None else json.dumps({"model": {}, "steps": steps}))
    return str(path)


def _compare(tmp_path, out="step1.json", **extra) -> dict:
    a = str(_neuron_file(tmp_path))
    return {"command": "compare", "files": [a, a], "out": str(tmp_path / out), **extra}


@pytest.mark.parametrize(
    "step2,message",
    [
        ({"bogus": 1}, "Step 2 (compare): unrecognized arguments: --bogus=1"),
        ({"files": 5}, "Step 2 (compare): 'files' must be a list of file names, not 5"),
        ({"out": {"path": "x"}}, "Step 2 (compare): 'out' must be text, a number, true/false or a list"),
        ({"out": UNWRITABLE + "/c.json"}, f"Step 2 (compare): --out: {UNWRITABLE}/c.json cannot be written"),
        ({"help": True}, "Step 2 (compare): 'help' is not an option name"),
        ({"command": "locate", "n": 2.5}, "Step 2 (locate): argument --n: 2.5 is not a whole number"),
        (
            {"command": "steer", "prompt": " ", "neurons": "a.json"},
            "Step 2 (steer): argument --prompt: The prompt is empty",
        ),
        ({"command": "rm"}, "Step 2: unknown command 'rm'"),
    ],
)
def test_every_step_is_checked_before_step_one_runs(tmp_path, step2, message):
    second = {**_compare(tmp_path, "step2.json"), **step2}
    with pytest.raises(ParameterError) as err:
        main(["run", _config(tmp_path, [_compare(tmp_path), second])], exit_on_error=False)
    assert message in str(err.value)
    assert not (tmp_path / "step1.json").exists()  # step 1 never ran


@pytest.mark.parametrize(
    "name,text",
    [
        ("deep.json", "[" * 200_000 + "]" * 200_000),
        ("deep.toml", "a = " + "[" * 200_000 + "]" * 200_000),
        ("deep2.json", '{"steps": [' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "]}"),
    ],
)
def test_a_config_nested_200000_deep_is_a_sentence(tmp_path, name, text):
    with pytest.raises(ParameterError, match="nested too deeply|must be text"):
        main(["run", _config(tmp_path, [], name, text)], exit_on_error=False)


def test_a_valid_config_still_runs_its_steps_in_order(tmp_path):
    outputs = main(
        ["run", _config(tmp_path, [_compare(tmp_path), _compare(tmp_path, "step2.json")])], exit_on_error=False
    )
    assert len(outputs) == 2 and (tmp_path / "step1.json").exists() and (tmp_path / "step2.json").exists()


# --- bad prompts and neurons are refused before the model loads ---------------------------------------------


def test_an_empty_steering_prompt_is_refused_while_reading_the_command_line(tmp_path, no_model, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["steer", "--prompt", "", "--neurons", str(_neuron_file(tmp_path))])
    assert exit_.value.code == 2 and "argument --prompt: The prompt is empty ('')" in capsys.readouterr().err
    from cnl_core.evaluate.steer import steer_stream

    with pytest.raises(ParameterError, match="empty"):
        next(steer_stream(None, "  \n", {}))  # the library refuses it too, before touching the model


@pytest.mark.parametrize(
    "argv,error,message",
    [
        (["inspect", "--neuron", "40:1", "--dataset", "add1"], NeuronSetError, "Neuron 40:1 does not exist"),
        (["inspect", "--neuron", "3:1536", "--dataset", "add1"], NeuronSetError, "Neuron 3:1536 does not exist"),
        (["steer", "--prompt", "2 + 2 =", "--neurons", "FILE"], ParameterError, "located on a 3 x 10 grid"),
        (
            ["evaluate", "--dataset", "add1", "--n", "1", "--neurons", "FILE"],
            ParameterError,
            "located on a 3 x 10 grid",
        ),
        (["matrix", "--neurons", "FILE", "--targets", "add1"], ParameterError, "but this model has 30 x 1536"),
    ],
)
def test_neurons_the_model_does_not_have_are_refused_before_it_loads(
    tmp_path, score_cache, no_model, argv, error, message
):
    argv = [str(_neuron_file(tmp_path)) if a == "FILE" else a for a in argv]
    with pytest.raises(error, match=message):
        main(argv, exit_on_error=False)


def test_the_readme_loss_counts_hold_on_a_few_cases_of_each_kind():
    """scripts/reliability_losses.py (the README's table) with 12 cases per kind: no crash, nothing lost,
    nothing written outside its target, no value run as code."""
    child = subprocess.run(
        [sys.executable, "scripts/reliability_losses.py", "--per-kind", "12", "--seed", "3"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.returncode == 0, child.stderr
    rows = [line.split("|")[2:-1] for line in child.stdout.splitlines()[2:]]
    assert len(rows) == 5
    for tried, accepted, refused, *bad in rows:
        assert int(tried) == 12 == int(accepted) + int(refused) and [int(b) for b in bad] == [0, 0, 0, 0]
