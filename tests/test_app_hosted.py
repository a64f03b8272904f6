"""The app as a public server runs it: budgets refused in one line, uploads released, no server path, plain names."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from test_app import _app, _texts, app_env, golden_dataset  # noqa: F401  (fixtures)


@pytest.fixture
def hosted(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # noqa: F811
    monkeypatch.setenv("GLITCHNET_HOSTED", "1")
    model = Path(os.environ["GLITCHNET_MODEL"])
    if not model.with_suffix(".onnx").is_file():  # a hosted server serves with the ONNX export (glitchnet.engine)
        from glitchnet.export import export

        export(model)
    st.cache_resource.clear()  # the server's budget and queue are read once per process
    yield app_env
    st.cache_resource.clear()


def _gif_frames(path: Path, repeat: int) -> bytes:
    """A GIF holding ``path``'s frames ``repeat`` times over (a frame-count bomb made of real views)."""
    with Image.open(path) as gif:
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(gif.convert("RGB"))
    frames = frames * repeat
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


def test_hosted_explore_shows_no_server_path(hosted: Path, golden_dataset: Path) -> None:  # noqa: F811
    at = _app("explore")
    skipped = at.dataframe[0].value
    assert list(skipped["path"]) == ["train/Blip/H1_corrupt0000_spectrogram_1.0.png"]
    shown = _texts(at.markdown) + _texts(at.caption) + _texts(at.warning) + _texts(at.error) + _texts(at.info)
    assert shown and not [t for t in shown if str(golden_dataset) in t or str(golden_dataset.parent) in t]


def test_hosted_error_lines_carry_no_server_path(hosted: Path, golden_dataset: Path,  # noqa: F811
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _app()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError(f"cannot open {golden_dataset}/train/Blip/x.png")

    monkeypatch.setattr(sys.modules["pages._ui"], "current_scan", boom)
    at = _app()
    assert _texts(at.error) == [f"Something went wrong: OSError: cannot open {golden_dataset.name}/train/Blip/x.png"]


def test_hosted_budgets_are_refused_in_one_line_and_uploads_released(hosted: Path, real: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLITCHNET_MAX_FILES", "2")
    blip = (real / "golden" / "Blip" / "blip-1.jpg").read_bytes()
    bomb = _gif_frames(real / "golden" / "Whistle" / "whistle-2.gif", repeat=3)  # 12 frames
    from streamlit.runtime.uploaded_file_manager import UploadedFile

    read: list[str] = []
    getvalue = UploadedFile.getvalue
    monkeypatch.setattr(UploadedFile, "getvalue", lambda self: read.append(self.name) or getvalue(self))
    at = _app("predict")
    at.file_uploader[0].set_value([("bomb.gif", bomb, "image/gif"), ("blip-1.jpg", blip, "image/jpeg"),
                                   ("extra.jpg", blip, "image/jpeg")]).run()
    assert not at.exception
    assert _texts(at.error) == ["`extra.jpg`: not classified, as this server classifies at most 2 files per batch "
                                f"(this batch: 2 file(s), {(len(bomb) + len(blip)) / 2**20:.1f} MB); upload it in "
                                "another batch."]
    assert read == ["bomb.gif", "blip-1.jpg"]  # the file over the budget is never read into the page's memory
    assert "uploads-0" not in at.session_state  # nor kept: the first uploader's state (all three files) is gone
    assert _texts(at.warning)[:1] == [
        "`bomb.gif` has more than 4 frames, the most this server classifies per file: only its first 4 are classified."]
    table = at.dataframe[0].value
    assert list(table["name"]) == [f"bomb.gif#frame{i}" for i in range(4)] + ["bomb.gif (combined, 4 views)",
                                                                               "blip-1.jpg"]
    # classified, so released: the uploader is a fresh, empty one and the results stay on the page
    assert at.session_state["upload_generation"] == 1 and at.file_uploader[0].value in (None, [])
    at.slider[0].set_value(0.8).run()
    assert list(at.dataframe[0].value["name"]) == list(table["name"]) and len(at.warning) >= 1 and len(at.error) == 1


def test_upload_names_are_plain_text(app_env: Path, real: Path) -> None:  # noqa: F811
    blip = (real / "golden" / "Blip" / "blip-1.jpg").read_bytes()
    name = "[click me](http://evil.example)=HYPERLINK.jpg"
    at = _app("predict")
    at.file_uploader[0].set_value([(name, blip, "image/jpeg")]).run()
    assert not at.exception
    assert f"**`{name}`** · 1 view" in _texts(at.markdown)
    assert not [m for m in _texts(at.markdown) if "](http" in m and f"`{name}`" not in m]
    assert list(at.dataframe[0].value["name"]) == [name]  # the table shows the name as it is


def test_a_strain_upload_cannot_make_the_server_read_its_own_files(hosted: Path, tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="the strain extra (gwpy, h5py) is not installed")
    import numpy as np

    secret = tmp_path / "server-secret.bin"  # a file of the server's that would scan as strain if it were read
    np.random.default_rng(7).standard_normal(4096 * 16).tofile(secret)
    path = tmp_path / "upload.hdf5"
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("strain/Strain", shape=(4096 * 16,), dtype="f8",
                               external=[(str(secret), 0, h5py.h5f.UNLIMITED)])
        ds.attrs["Xstart"], ds.attrs["Xspacing"] = 1e9, 1 / 4096
    at = _app("predict")
    at.file_uploader(key="strain_file").set_value(("upload.hdf5", path.read_bytes(), "application/x-hdf5")).run()
    at.number_input(key="strain_gps").set_value(1e9 + 8).run()
    assert not at.exception
    assert _texts(at.error) == ["`upload.hdf5`: `/strain/Strain` stores its samples in an external file"]
    assert not at.dataframe and not [m for m in _texts(at.markdown) if "views" in m]


LINK_NAMES = ("[Log in to keep your results](https://evil.example/login).png", "![t](http://evil.example/t.png).png")


def _live_markdown(text: str) -> bool:
    """Whether ``text``, read as Markdown, holds a link or an image outside code spans."""
    import re

    outside = re.sub(r"(`+)(?:(?!\1).)+?\1", "", text)
    return "](" in outside or "![" in outside


def test_file_names_never_become_links_or_images(hosted: Path, real: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLITCHNET_MAX_FILES", "1")
    blip = (real / "golden" / "Blip" / "blip-1.jpg").read_bytes()
    at = _app("predict")
    at.file_uploader[0].set_value([(name, blip, "image/png") for name in LINK_NAMES]).run()
    assert not at.exception and len(at.error) == 1
    captions = [i.caption for img in at.get("image") for i in img.proto.imgs]
    assert [c.rsplit(": ", 1)[0] for c in captions] == [f"`{LINK_NAMES[0]}`"]  # the Grad-CAM view of the first
    assert _texts(at.error)[0].startswith(f"`{LINK_NAMES[1]}`: not classified")
    drawn = (_texts(at.markdown) + _texts(at.caption) + _texts(at.warning) + _texts(at.error) + _texts(at.info)
             + captions)
    assert not [t for t in drawn if _live_markdown(t)], drawn


def test_a_zip_bomb_checkpoint_is_one_line_on_home(hosted: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from test_hostile_checkpoints import zip_bomb_checkpoint

    monkeypatch.setenv("GLITCHNET_MODEL", str(zip_bomb_checkpoint(tmp_path / "bomb.pt")))
    at = _app()
    shown = _texts(at.warning) + _texts(at.sidebar.warning)
    assert [w for w in shown if w.startswith("bomb.pt") and "MB" in w and "\n" not in w], shown


def test_constant_strain_is_one_plain_line_on_predict(hosted: Path, tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py", reason="the strain extra (gwpy, h5py) is not installed")
    import numpy as np

    path = tmp_path / "flat.hdf5"
    with h5py.File(path, "w") as fh:
        ds = fh.create_dataset("strain/Strain", data=np.full(16384 * 16, 1.0))
        ds.attrs["Xstart"], ds.attrs["Xspacing"] = 1e9, 1 / 16384
    at = _app("predict")
    at.file_uploader(key="strain_file").set_value(("flat.hdf5", path.read_bytes(), "application/x-hdf5")).run()
    at.number_input(key="strain_gps").set_value(1e9 + 8).run()
    assert not at.exception
    assert _texts(at.error) == ["`flat.hdf5`: the data within 8.0 s of GPS 1000000008.0 are constant (1): there is no "
                                "noise to whiten"]
