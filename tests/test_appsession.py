"""glitchnet.appsession: the one call past Streamlit's public API, checked against the installed Streamlit."""

from __future__ import annotations

from types import SimpleNamespace

from glitchnet import appsession


class _Upload:
    def __init__(self, file_id: str) -> None:
        self.file_id, self.closed = file_id, False

    def close(self) -> None:
        self.closed = True


def _manager_with(session: str, ids: list[str]):
    from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    manager = MemoryUploadedFileManager("/_stcore/upload_file")
    for file_id in ids:
        manager.add_file(session, UploadedFileRec(file_id=file_id, name=f"{file_id}.png", type="image/png",
                                                  data=b"x" * 1000))
    return manager


def test_forget_uploads_removes_the_files_from_streamlits_upload_manager(monkeypatch):
    """With the installed Streamlit's own upload manager: the two released files go, the visitor's third stays."""
    from streamlit import runtime
    from streamlit.runtime import scriptrunner

    manager = _manager_with("visitor", ["a", "b", "c"])
    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance", lambda: SimpleNamespace(uploaded_file_mgr=manager))
    monkeypatch.setattr(scriptrunner, "get_script_run_ctx", lambda: SimpleNamespace(session_id="visitor"))
    uploads = [_Upload("a"), _Upload("b")]
    assert appsession.forget_uploads(uploads) == 2
    assert all(u.closed for u in uploads)
    assert [f.file_id for f in manager.get_files("visitor", ["a", "b", "c"])] == ["c"]


def test_outside_a_running_server_it_closes_the_files_and_removes_nothing():
    uploads = [_Upload("a")]
    assert appsession.forget_uploads(uploads) == 0  # no script run context here (as under AppTest)
    assert uploads[0].closed


def test_a_streamlit_whose_internals_moved_keeps_serving(monkeypatch, caplog):
    from streamlit import runtime
    from streamlit.runtime import scriptrunner

    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance", lambda: SimpleNamespace())  # no uploaded_file_mgr
    monkeypatch.setattr(scriptrunner, "get_script_run_ctx", lambda: SimpleNamespace(session_id="visitor"))
    assert appsession.forget_uploads([_Upload("a")]) == 0
    assert "freed when the tab closes" in caplog.text


def test_the_installed_streamlit_is_in_the_pinned_range():
    import streamlit
    from packaging.version import Version

    assert Version("1.40") <= Version(streamlit.__version__) < Version("1.68"), (
        f"streamlit {streamlit.__version__} is outside the range glitchnet/appsession.py was tested on")


