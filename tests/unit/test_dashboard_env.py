"""The app follows Gradio's conventions: server name/port from the environment (flags win), and old files go."""

import os
import time

import dashboard


def test_server_name_and_port_come_from_the_environment_and_flags_win(monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8123")
    args = dashboard.parse_args([])
    assert (args.host, args.port) == ("0.0.0.0", 8123)
    args = dashboard.parse_args(["--host", "127.0.0.1", "--port", "9000"])
    assert (args.host, args.port) == ("127.0.0.1", 9000)
    monkeypatch.delenv("GRADIO_SERVER_NAME")
    monkeypatch.delenv("GRADIO_SERVER_PORT")
    assert (dashboard.parse_args([]).host, dashboard.parse_args([]).port) == ("127.0.0.1", 7860)


def test_matplotlib_config_stays_under_the_cache_folder():
    assert os.environ["MPLCONFIGDIR"].startswith(str(dashboard.cache_root()))


def test_old_uploads_and_exports_are_cleaned_and_new_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("CNL_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    old_upload, new_upload = tmp_path / "gradio" / "a" / "x.csv", tmp_path / "gradio" / "b" / "y.csv"
    old_export = tmp_path / "visitors" / "session1" / "exports" / "e.json"
    for f in (old_upload, new_upload, old_export):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x")
    past = time.time() - 3 * 24 * 3600
    for folder in (old_upload.parent, old_export.parents[1]):
        os.utime(folder, (past, past))
    assert dashboard.clean_old_files() == 2
    assert new_upload.exists() and not old_upload.exists() and not old_export.exists()


def test_a_user_error_is_shown_as_is_and_logged_as_one_line(caplog):
    import gradio as gr
    import pytest

    from cnl_core.errors import DatasetError
    from ui.errors import shows_errors

    @shows_errors
    def handler():
        raise DatasetError("Asked for 10000 rows but only 1319 are available.")

    with caplog.at_level("INFO", logger="cnl.dashboard"), pytest.raises(gr.Error) as err:
        handler()
    assert str(err.value.message) == "Asked for 10000 rows but only 1319 are available."
    assert err.value.print_exception is False  # Gradio prints no traceback for it
    assert [r.getMessage() for r in caplog.records] == ["refused: Asked for 10000 rows but only 1319 are available."]


def test_a_cancelled_run_is_a_notice_titled_cancelled_not_an_error(monkeypatch):
    """A student who pressed Cancel read the red 'Error' toast as a crash: a grey notice titled "Cancelled" says
    so, and the page keeps what it showed (issue #33)."""
    import gradio as gr

    from cnl_core.errors import Cancelled
    from ui import errors
    from ui.errors import shows_errors

    notices = []
    monkeypatch.setattr(errors.gr, "Info", lambda message, title="Info", duration=10: notices.append((title, message)))

    @shows_errors
    def handler():
        raise Cancelled("Cancelled after 16 of 1000 samples of gsm8k.")

    @shows_errors
    def streaming():
        yield "first token"
        raise Cancelled("Cancelled after 1 of 16 new tokens.")

    assert handler() == gr.skip()
    assert list(streaming()) == ["first token", gr.skip()]
    assert [t for t, _ in notices] == ["Cancelled", "Cancelled"] and "16 of 1000" in notices[0][1]


def test_a_failed_upload_clears_the_preview_and_the_column_pickers(tmp_path):
    import warnings

    from ui.session import new_session
    from ui.tabs import data_tab

    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("question,answer\nWhat is 2 + 2?,4\n")
    bad.write_text("question,answer\n")
    state = new_session()
    prompt, answer, preview, state = data_tab.inspect_upload(str(good), state)
    assert prompt["choices"] and len(preview) == 1 and state.pending_upload
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prompt, answer, preview, state = data_tab.inspect_upload(str(bad), state)
    assert prompt["choices"] == [] and answer["value"] is None and preview.empty and state.pending_upload is None


def test_the_demo_is_warmed_in_shared_mode_unless_told(monkeypatch):
    import dashboard
    from cnl_core.shared_mode import Policy

    monkeypatch.delenv("CNL_WARM_DEMO", raising=False)
    shared, local = Policy.from_env(shared=True), Policy.from_env(shared=False)
    assert dashboard.warm_wanted(dashboard.parse_args([]), shared)
    assert not dashboard.warm_wanted(dashboard.parse_args([]), local)
    assert dashboard.warm_wanted(dashboard.parse_args(["--warm-demo"]), local)
    assert not dashboard.warm_wanted(dashboard.parse_args(["--no-warm-demo"]), shared)
    monkeypatch.setenv("CNL_WARM_DEMO", "1")
    assert dashboard.warm_wanted(dashboard.parse_args([]), local)
