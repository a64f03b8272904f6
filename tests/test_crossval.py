"""Fine-tuning, cross-validation and the statistics that report it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from glitchnet.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from glitchnet.classes import CLASSES
from glitchnet.crossval import FinetuneConfig, cross_validate, finetune, glitch_scores
from glitchnet.evaluate import fuse_by_glitch, fuse_log_probabilities, mcnemar_exact, predict_logits, wilson_interval
from glitchnet.images import energy_to_rgb
from glitchnet.model import FrequencyGlitchNet, GlitchNet
from glitchnet.realpool import RealPool


def test_fusion_is_the_normalized_geometric_mean():
    probs = np.array([[0.5, 0.25, 0.25], [0.125, 0.5, 0.375]])
    fused = fuse_log_probabilities(probs)
    expected = np.sqrt(probs[0] * probs[1])
    np.testing.assert_allclose(fused, expected / expected.sum())
    keys, by_glitch = fuse_by_glitch(np.vstack([probs, [[0.1, 0.1, 0.8]]]), np.array(["a", "a", "b"]))
    assert keys.tolist() == ["a", "b"]
    np.testing.assert_allclose(by_glitch[0], fused)
    np.testing.assert_allclose(by_glitch[1], [0.1, 0.1, 0.8])


def test_wilson_interval_matches_the_textbook_values():
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(89, 127)
    assert lo == pytest.approx(0.6164, abs=1e-3) and hi == pytest.approx(0.7741, abs=1e-3)


def test_mcnemar_counts_discordant_pairs():
    a = np.array([True] * 10 + [False] * 2 + [True] * 5)
    b = np.array([False] * 10 + [True] * 2 + [True] * 5)
    r = mcnemar_exact(a, b)
    assert (r["only_a"], r["only_b"]) == (10, 2)
    assert r["p_value"] == pytest.approx(0.03857, abs=1e-4)  # 2 * P(X <= 2), X ~ Binomial(12, 1/2)
    assert mcnemar_exact(a, a)["p_value"] == 1.0


def test_frequency_model_starts_as_the_seed_model():
    torch.manual_seed(0)
    seed = GlitchNet(width=8).eval()
    for m in seed.modules():  # non-trivial BatchNorm statistics, so the comparison means something
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.weight.data.uniform_(0.5, 1.5)
    freq = FrequencyGlitchNet.from_glitchnet(seed.state_dict(), 22, 8).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(freq(x), seed(x))
        freq.conv1.weight[:, 3].fill_(0.1)  # once the coordinate channel has weight, rows differ by frequency
        assert not torch.allclose(freq(x), seed(x))
    assert freq.conv1.in_channels == 4


def test_checkpoint_names_its_architecture(tmp_path):
    model = FrequencyGlitchNet(width=8)
    path = save_checkpoint(Checkpoint(state_dict=model.state_dict(), width=8, arch="glitchnet-freq"), tmp_path / "f.pt")
    loaded = load_checkpoint(path)
    assert loaded.arch == "glitchnet-freq"
    assert isinstance(loaded.build_model(), FrequencyGlitchNet)


def _tiny_pool(n_per_class: int = 4) -> RealPool:
    """Two classes told apart by where a bright band sits in frequency; two views per glitch."""
    rng = np.random.default_rng(0)
    images, rows = [], []
    for label, row in (("Blip", 40), ("Power_Line", 170)):
        for g in range(n_per_class):
            for view in ("1.0", "2.0"):
                energy = rng.exponential(1.0, (224, 224)).astype(np.float32)
                energy[row:row + 14, 30:190] += 20.0
                images.append(energy_to_rgb(energy))
                rows.append({"path": f"{label}{g}", "frame": 0, "label": label, "source": "golden",
                             "glitch": f"{label}{g}", "view": view, "group": len(rows) // 2})
    return RealPool(np.stack(images), pd.DataFrame(rows))


@pytest.mark.slow
def test_finetune_learns_and_cross_validation_scores_held_out_folds():
    torch.manual_seed(0)
    start = Checkpoint(state_dict=GlitchNet(width=8).state_dict(), width=8)
    pool = _tiny_pool()
    labels = pool.labels
    before = predict_logits(start.build_model(), pool.images)
    config = FinetuneConfig(epochs=4, lr=3e-3, batch_size=8, augment="none", sim_per_real=0.0, precise_bn=16)
    tuned = finetune(start, pool.images, labels, None, None, config)
    after = predict_logits(tuned, pool.images)
    assert not tuned.training
    y = torch.as_tensor(labels)
    loss = torch.nn.functional.cross_entropy
    assert loss(torch.as_tensor(after), y) < loss(torch.as_tensor(before), y)

    folds = np.array([0, 0, 1, 1, 0, 0, 1, 1] * 2)  # whole glitches per fold, both classes in each fold
    zero = cross_validate("zero", pool, folds, start, None, None, None)
    np.testing.assert_allclose(zero.probabilities.sum(1), 1.0)
    np.testing.assert_allclose(np.log(zero.probabilities) - np.log(zero.probabilities).mean(1, keepdims=True),
                               before - before.mean(1, keepdims=True), atol=1e-4)
    scores = glitch_scores(pool, zero.probabilities)
    assert scores["glitches"] == 8
    pred = zero.probabilities.argmax(1)
    assert scores["per_image_accuracy"] == pytest.approx(float((pred == labels).mean()))
    assert set(scores["recall"]) == {"Blip", "Power_Line"}
    lo, hi = scores["wilson95"]
    assert lo <= scores["accuracy"] <= hi
    assert all(r["label"] in CLASSES for r in scores["rows"])


def test_wise_ft_interpolates_toward_the_start_and_keeps_rows_the_start_lacks():
    import numpy as np
    import torch

    from glitchnet.checkpoint import Checkpoint
    from glitchnet.classes import CLASSES, GRAVITYSPY_O3
    from glitchnet.crossval import FinetuneConfig, interpolate_weights
    from glitchnet.model import GlitchNet
    from glitchnet.train import load_initial_weights

    torch.manual_seed(0)
    start = Checkpoint(state_dict=GlitchNet(width=8).state_dict(), width=8)
    o3 = list(GRAVITYSPY_O3.names)
    tuned = GlitchNet(num_classes=len(o3), width=8)
    load_initial_weights(tuned, start, o3)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(1.0)  # "fine-tuning": every weight moved by one
    config = FinetuneConfig(arch="glitchnet", precise_bn=0)
    images = np.zeros((0, 224, 224, 3), np.uint8)
    half = interpolate_weights(tuned, start, o3, 0.5, images, config)
    assert torch.allclose(half.conv1.weight, start.state_dict["conv1.weight"] + 0.5)
    blip, fast = o3.index("Blip"), o3.index("Fast_Scattering")
    assert torch.allclose(half.fc.weight[blip], start.state_dict["fc.weight"][CLASSES.index("Blip")] + 0.5)
    assert torch.equal(half.fc.weight[fast], tuned.fc.weight[fast])  # no start row to pull toward
    same = interpolate_weights(tuned, start, o3, 1.0, images, config)
    assert all(torch.equal(a, b) for a, b in zip(same.state_dict().values(), tuned.state_dict().values()))
