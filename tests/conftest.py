"""Shared test fixtures: the real-data folder, tiny synthetic datasets in every layout, a random checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's AppTest runs each page as ``__main__`` and leaves it in ``sys.modules``; a process that
    multiprocessing later starts with "spawn" (``torch.multiprocessing.spawn``) runs ``__main__`` again, so it would
    run the last page, start the built-in dataset's build and wait for it at exit. Put the real one back after each
    test."""
    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def real() -> Path:
    """The real Gravity Spy files; tests needing them skip only when the folder is absent."""
    if not REAL.is_dir():
        pytest.skip(f"real Gravity Spy data not found at {REAL} (the ../shared folder is absent)")
    return REAL


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GLITCHNET_CACHE_DIR", str(tmp_path_factory.mktemp("tensor-cache")))


def synthetic_crop(label_index: int, seed: int, size: tuple[int, int] = (569, 479)) -> Image.Image:
    """A Kaggle-format plot-area image whose bright horizontal band sits at a row set by the class."""
    from glitchnet.images import energy_to_rgb

    rng = np.random.default_rng(seed)
    w, h = size
    energy = rng.exponential(1.0, size=(h, w)).astype(np.float32)
    row = int((label_index + 0.5) / 3 * h)
    energy[max(0, row - 20):row + 20, w // 4: 3 * w // 4] += 20.0
    rgb = energy_to_rgb(energy)
    rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    return Image.fromarray(rgba, "RGBA")


def make_kaggle(root: Path, classes=("Blip", "Koi_Fish", "Power_Line"), per_split=None, doubled: bool = True,
                durations=(0.5, 1.0, 2.0, 4.0), size: tuple[int, int] = (190, 160)) -> Path:
    """A tiny Kaggle-layout dataset: split/split/<Class>/{ifo}_{id}_spectrogram_{dur}.png (small crops, fast)."""
    per_split = per_split or {"train": 4, "validation": 2, "test": 2}
    n = 0
    for split, count in per_split.items():
        base = root / split / split if doubled else root / split
        for ci, cls in enumerate(classes):
            d = base / cls
            d.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                gid = f"{cls[:3]}{split[:2]}{k:05d}".ljust(10, "x")[:10]
                for dur in durations:
                    synthetic_crop(ci, n, size).save(d / f"H1_{gid}_spectrogram_{dur}.png", compress_level=1)
                    n += 1
    return root


@pytest.fixture
def kaggle_dataset(tmp_path: Path) -> Path:
    return make_kaggle(tmp_path / "kaggle")


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    import torch

    from glitchnet.checkpoint import Checkpoint, save_checkpoint
    from glitchnet.model import GlitchNet

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "random.pt"
    save_checkpoint(Checkpoint(state_dict=GlitchNet().state_dict()), path)
    return path
