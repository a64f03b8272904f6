"""Invariants of the class-specific augmentation, pinned for every one of the 22 classes on synthetic images."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from glitchnet import augment as aug
from glitchnet.classes import CLASSES, INFO_BY_NAME
from glitchnet.images import ENERGY_MAX, canonical_uint8, energy_to_rgb, rgb_to_energy, row_of_frequency, viridis_lut

SIZE = 224
ROWS_PER_OCTAVE = SIZE / aug.OCTAVES_IN_VIEW
PINNED = [c for c in CLASSES if INFO_BY_NAME[c].pinned_frequency]
DIRECTED = [c for c in CLASSES if not INFO_BY_NAME[c].time_symmetric]


def background(seed: int = 0) -> np.ndarray:
    """Normalized energy of Gaussian noise: exponential with mean 1, lightly smoothed in time like real tiles."""
    e = np.random.default_rng(seed).exponential(1.0, (SIZE, SIZE + 2))
    return ((e[:, :-2] + e[:, 1:-1] + e[:, 2:]) / 3.0).astype(np.float32)


def line_image(frequency_hz: float, seed: int = 0) -> np.ndarray:
    """A horizontal line (2 rows, energy 18) at ``frequency_hz`` over the middle 70% of the window."""
    e = background(seed)
    row = int(round(float(row_of_frequency(frequency_hz, SIZE))))
    e[row:row + 2, 34:190] = 18.0
    return energy_to_rgb(e)


def rising_track_image(seed: int = 0) -> np.ndarray:
    """A track rising from ~30 Hz to ~400 Hz across the middle of the window: a chirp's direction in time."""
    e = background(seed)
    cols = np.arange(60, 165)
    rows = np.rint(np.linspace(row_of_frequency(30.0, SIZE), row_of_frequency(400.0, SIZE), cols.size)).astype(int)
    for c, r in zip(cols, rows, strict=True):
        e[r - 1:r + 2, c] = 20.0
    return energy_to_rgb(e)


def class_image(label: str, seed: int = 0) -> np.ndarray:
    """A schematic of the class: a line at its band for pinned classes, a rising track for directed ones, else a
    blob at the band's centre."""
    lo, hi = INFO_BY_NAME[label].band_hz
    centre_hz = math.sqrt(lo * hi)
    if INFO_BY_NAME[label].pinned_frequency:
        return line_image(centre_hz, seed)
    if not INFO_BY_NAME[label].time_symmetric:
        return rising_track_image(seed)
    e = background(seed)
    r0 = float(row_of_frequency(centre_hz, SIZE))
    rr, cc = np.mgrid[0:SIZE, 0:SIZE]
    e += 22.0 * np.exp(-0.5 * (((rr - r0) / 12.0) ** 2 + ((cc - 112) / 6.0) ** 2))
    return energy_to_rgb(np.minimum(e, ENERGY_MAX))


def on_lut(img: np.ndarray) -> bool:
    lut = viridis_lut().astype(np.int64)
    codes = (img[..., 0].astype(np.int64) << 16) | (img[..., 1].astype(np.int64) << 8) | img[..., 2]
    return bool(np.isin(codes, (lut[:, 0] << 16) | (lut[:, 1] << 8) | lut[:, 2]).all())


def track_slope(img: np.ndarray) -> float:
    """Slope (rows per column) of the bright track; negative = rising in frequency with time."""
    e = rgb_to_energy(img)
    mask = e > 8.0
    cols = np.nonzero(mask.sum(0) > 0)[0]
    rows = np.array([np.nonzero(mask[:, c])[0].mean() for c in cols])
    return float(np.polyfit(cols, rows, 1)[0])


# ------------------------------------------------------------------------------------------------ the table


def test_every_class_has_a_policy() -> None:
    assert set(aug.CLASS_POLICIES) == set(CLASSES) | {"Fast_Scattering", "Blip_Low_Frequency"}


@pytest.mark.parametrize("label", CLASSES)
def test_policy_respects_the_class_physics(label: str) -> None:
    info = INFO_BY_NAME[label]
    names = [s.name for s in aug.policy(label)]
    assert len(names) == len(set(names))
    assert {"time_shift", "time_roll"} & set(names), "every class gets some time translation"
    if info.pinned_frequency:
        assert not {"freq_shift", "freq_stretch"} & set(names)
    if not info.time_symmetric:
        assert "time_reverse" not in names
    for spec in aug.policy(label):
        assert 0.0 < spec.prob <= 1.0
        assert spec.reason
        for lo, hi in spec.params.values():
            assert lo <= hi
        if spec.name == "freq_shift":
            assert spec.params["octaves"][1] <= 0.25, "frequency moves stay small"


@pytest.mark.parametrize("label", CLASSES)
def test_policy_table_lists_the_policy(label: str) -> None:
    table = aug.policy_table(label)
    assert list(table.columns) == ["transform", "probability", "range", "reason"]
    assert list(table["transform"]) == [s.name for s in aug.policy(label)]
    assert table["reason"].str.len().min() > 5


def test_unknown_transform_is_refused_and_an_unknown_class_gets_the_cautious_policy() -> None:
    img = class_image("Blip")
    # a class of a researcher's own taxonomy: only what is true of any glitch (time shift, loudness, noise)
    assert aug.policy("Bleep") == aug.UNKNOWN_CLASS_POLICY
    assert {s.name for s in aug.UNKNOWN_CLASS_POLICY} == {"time_shift", "loudness", "noise_redraw"}
    out, _ = aug.augment(img, "Bleep", np.random.default_rng(0))
    assert out.shape == img.shape
    with pytest.raises(ValueError, match="unknown transform"):
        aug.augment(img, "Blip", np.random.default_rng(0), enabled={"rotate"})


# ------------------------------------------------------------------------------------------------ per-class invariants


@pytest.mark.parametrize("label", CLASSES)
def test_output_is_viridis_in_range_and_deterministic(label: str) -> None:
    img = class_image(label)
    outs = []
    for seed in range(8):
        out, applied = aug.augment(img, label, np.random.default_rng(seed))
        assert out.shape == img.shape and out.dtype == np.uint8
        assert on_lut(out), "every pixel must be a viridis colour"
        energy = rgb_to_energy(out)
        assert energy.min() >= 0.0 and energy.max() <= ENERGY_MAX
        again, applied_again = aug.augment(img, label, np.random.default_rng(seed))
        np.testing.assert_array_equal(out, again)
        assert applied == applied_again
        outs.append(out.tobytes())
    assert len(set(outs)) >= 5, "different seeds must give different images"


@pytest.mark.parametrize("label", CLASSES)
def test_frequency_moves_are_bounded(label: str) -> None:
    """Pinned classes keep their line in the same rows; the others move by no more than their policy allows."""
    lo, hi = INFO_BY_NAME[label].band_hz
    img = line_image(math.sqrt(lo * hi), seed=1)
    profile0 = rgb_to_energy(img).mean(1)
    row0 = int(profile0.argmax())
    line_rows = set(np.nonzero(profile0 > 5.0)[0].tolist())
    max_oct = max((s.params["octaves"][1] for s in aug.policy(label) if s.name == "freq_shift"), default=0.0)
    for seed in range(12):
        out, _ = aug.augment(img, label, np.random.default_rng(seed))
        profile = rgb_to_energy(out).mean(1)
        if INFO_BY_NAME[label].pinned_frequency:
            assert int(profile.argmax()) in line_rows
            assert np.corrcoef(profile0, profile)[0, 1] > 0.95
        else:
            assert abs(int(profile.argmax()) - row0) <= max_oct * ROWS_PER_OCTAVE + 2


@pytest.mark.parametrize("label", CLASSES)
def test_direction_in_time_is_kept_unless_symmetric(label: str) -> None:
    img = rising_track_image(seed=2)
    assert track_slope(img) < 0
    slopes = [track_slope(aug.augment(img, label, np.random.default_rng(seed))[0]) for seed in range(24)]
    if INFO_BY_NAME[label].time_symmetric:
        assert any(s > 0 for s in slopes), "time-symmetric classes are sometimes reversed"
    else:
        assert all(s < 0 for s in slopes), "a directed class must never be reversed"


@pytest.mark.parametrize("label", CLASSES)
def test_enabled_limits_what_is_applied(label: str) -> None:
    img = class_image(label)
    names = [s.name for s in aug.policy(label)]
    for seed in range(6):
        _, applied = aug.augment(img, label, np.random.default_rng(seed), enabled={names[-1]})
        assert {a.name for a in applied} <= {names[-1]}
    out, applied = aug.augment(img, label, np.random.default_rng(0), enabled=set())
    assert applied == []
    np.testing.assert_array_equal(out, energy_to_rgb(rgb_to_energy(img)))  # only re-quantized to viridis


def test_switching_one_transform_off_keeps_the_others_amounts() -> None:
    img = class_image("Blip")
    _, every = aug.augment(img, "Blip", np.random.default_rng(3))
    kept = {a.name for a in every} - {"time_reverse"}
    _, some = aug.augment(img, "Blip", np.random.default_rng(3), enabled=kept)
    assert [a for a in every if a.name in kept and a.name in {"loudness", "noise_redraw"}] == \
        [a for a in some if a.name in {"loudness", "noise_redraw"}]


# ------------------------------------------------------------------------------------------------ single transforms


def test_time_shift_fills_with_background_noise_and_keeps_the_glitch() -> None:
    img = class_image("Blip")
    e0 = rgb_to_energy(img)
    glitch0 = float(np.maximum(e0 - 3.0, 0).sum())
    shifted = 0
    for seed in range(20):
        out, applied = aug.augment(img, "Blip", np.random.default_rng(seed), enabled={"time_shift"})
        if not applied:
            continue
        shifted += 1
        k = round(applied[0].amount * SIZE)
        assert abs(applied[0].amount) <= 0.2 + 1e-9
        e = rgb_to_energy(out)
        gap = e[:, :k] if k > 0 else e[:, k:]
        assert 0.5 < gap.mean() < 1.6, "vacated columns hold noise like the background, not zeros"
        assert float(np.maximum(e - 3.0, 0).sum()) > 0.9 * glitch0, "the glitch stays inside the window"
    assert shifted >= 5


def test_loudness_scales_the_glitch_not_the_background_and_saturates() -> None:
    img = class_image("Koi_Fish")
    e0 = rgb_to_energy(img)
    quiet = e0 < 2.0
    scaled = 0
    for seed in range(20):
        out, applied = aug.augment(img, "Koi_Fish", np.random.default_rng(seed), enabled={"loudness"})
        if not applied:
            continue
        scaled += 1
        e = rgb_to_energy(out)
        assert e.max() <= ENERGY_MAX
        assert np.abs(e[quiet] - e0[quiet]).mean() < 0.05, "background untouched"
        if applied[0].amount > 1.05:
            assert e.sum() > e0.sum()
    assert scaled >= 5
    # Extremely_Loud is only ever made louder.
    for seed in range(20):
        _, applied = aug.augment(class_image("Extremely_Loud"), "Extremely_Loud", np.random.default_rng(seed),
                                 enabled={"loudness"})
        assert all(a.amount >= 1.0 for a in applied)


def test_noise_redraw_keeps_the_background_statistics() -> None:
    img = energy_to_rgb(background(5))
    e0 = rgb_to_energy(img)
    out, applied = aug.augment(img, "No_Glitch", np.random.default_rng(1), enabled={"noise_redraw"})
    assert [a.name for a in applied] == ["noise_redraw"]
    e = rgb_to_energy(out)
    scale = applied[0].amount
    assert abs(e.mean() / (e0.mean() * scale) - 1.0) < 0.1
    assert abs(np.quantile(e, 0.99) / (np.quantile(e0, 0.99) * scale) - 1.0) < 0.25
    assert np.corrcoef(e.ravel(), e0.ravel())[0, 1] < 0.2, "a fresh draw, not the old noise"


def test_axes_spines_stay_on_the_top_row_and_left_column() -> None:
    """A Kaggle crop's black spines belong to the axes: the data move under them, and they never move."""
    e = rgb_to_energy(class_image("Blip"))
    e[0, :] = 0.0
    e[:, 0] = 0.0
    img = energy_to_rgb(e)
    for seed in range(10):
        out, _ = aug.augment(img, "Blip", np.random.default_rng(seed))
        energy = rgb_to_energy(out)
        assert energy[0].max() <= 0.2 and energy[:, 0].max() <= 0.2
        assert energy[1:, -1].mean() > 0.3 and energy[-1, 1:].mean() > 0.3, "no spine moved inside the plot"
        assert energy[1:, 1].mean() > 0.3 and energy[1, 1:].mean() > 0.3


# ------------------------------------------------------------------------------------------------ the augmenter


def test_augmenter_modes_pickle_and_behave() -> None:
    img = class_image("Chirp")
    outputs = set()
    for mode in aug.AUGMENTATION_MODES:
        augmenter = aug.make_augmenter(mode)
        clone = pickle.loads(pickle.dumps(augmenter))
        a = augmenter(img, "Chirp", np.random.default_rng(4))
        b = clone(img, "Chirp", np.random.default_rng(4))
        np.testing.assert_array_equal(a, b)
        assert a.shape == img.shape and a.dtype == np.uint8
        outputs.add(b"".join(augmenter(img, "Chirp", np.random.default_rng(s)).tobytes() for s in range(4)))
    assert len(outputs) == len(aug.AUGMENTATION_MODES), "no mode is another one under a second name"
    np.testing.assert_array_equal(aug.make_augmenter("none")(img, "Chirp", np.random.default_rng(0)), img)
    generic = [aug.make_augmenter("generic")(img, "Chirp", np.random.default_rng(s)) for s in range(4)]
    assert len({g.tobytes() for g in generic}) == 4
    with pytest.raises(ValueError, match="augmentation mode"):
        aug.make_augmenter("fancy")


def test_applied_captions_read_well() -> None:
    assert str(aug.Applied("time_shift", 0.08)) == "time shift +0.08 window"
    assert str(aug.Applied("time_reverse", 1.0)) == "time reversed"
    assert str(aug.Applied("loudness", 1.25)) == "glitch energy ×1.25"


@pytest.mark.parametrize("label", ["Blip", "Chirp", "Power_Line", "Scattered_Light"])
def test_real_golden_images(real: Path, label: str) -> None:
    path = sorted((real / "golden" / label).glob("*-2.gif"))[0]
    img = canonical_uint8(path, frame=1)
    for seed in range(3):
        out, _ = aug.augment(img, label, np.random.default_rng(seed))
        assert on_lut(out) and out.shape == img.shape


def test_render_variation_stays_on_viridis_and_near_the_original():
    from glitchnet.images import snap_to_viridis

    rng = np.random.default_rng(0)
    energy = rng.exponential(1.0, (224, 224)).astype(np.float32)
    energy[100:110, 50:170] = 22.0
    img = energy_to_rgb(energy)
    kinds = set()
    for seed in range(8):
        out, applied = aug.render_variation(img, np.random.default_rng(seed))
        kinds.add(applied[0].name)
        assert out.shape == img.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(snap_to_viridis(out), out)  # snapped like every upload
        e = rgb_to_energy(out)
        assert e[100:110, 60:160].mean() > 15.0  # the line survives the journey
        assert abs(float(np.median(e)) - float(np.median(energy))) < 0.5
    assert kinds == {"jpeg_quality", "gif_palette"}
    with pytest.raises(ValueError, match="render_prob"):
        aug.make_augmenter("none", render_prob=1.5)
    always = aug.make_augmenter("none", render_prob=1.0)
    assert not np.array_equal(always(img, "Blip", np.random.default_rng(1)), img)


# ------------------------------------------------------------------------------------------------- seeding


def test_generic_augmentation_is_torchvisions_and_reproducible() -> None:
    import threading

    import torch

    img = class_image("Chirp")
    threads = torch.get_num_threads()
    torch.manual_seed(11)
    expected_stream = torch.rand(4)
    torch.manual_seed(11)
    out, applied = aug.generic_augment(img, np.random.default_rng([7, 2, 5]))
    assert torch.equal(torch.rand(4), expected_stream)  # the caller's torch stream is left alone
    assert torch.get_num_threads() == threads
    assert out.shape == img.shape and out.dtype == np.uint8
    names = [a.name for a in applied]
    assert names[-4:] == ["resized_crop", "brightness", "contrast", "saturation"] and names[:-4] in ([], ["hflip"])
    assert 0.8 <= applied[-4].amount <= 1.0 and all(0.8 <= a.amount <= 1.2 for a in applied[-3:])
    # same (seed, epoch, index) generator, same image and amounts: alone, after other torch draws, or in threads
    torch.rand(100)
    again, applied_again = aug.generic_augment(img, np.random.default_rng([7, 2, 5]))
    np.testing.assert_array_equal(again, out)
    assert applied_again == applied
    seeds = [[7, epoch, index] for epoch in range(2) for index in range(3)]
    alone = [aug.generic_augment(img, np.random.default_rng(s))[0] for s in seeds]
    threaded: dict[int, np.ndarray] = {}

    def work(k: int) -> None:
        threaded[k] = aug.generic_augment(img, np.random.default_rng(seeds[k]))[0]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(seeds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, a in enumerate(alone):
        np.testing.assert_array_equal(threaded[k], a)
    assert len({a.tobytes() for a in alone}) == len(seeds)
    # RandomHorizontalFlip(0.5): about half the draws flip
    flips = [s for s in range(24) if aug.generic_augment(img, np.random.default_rng(s))[1][0].name == "hflip"]
    assert 6 <= len(flips) <= 18, len(flips)


def test_training_augmentation_is_reproducible_per_seed_epoch_and_index() -> None:
    from glitchnet.data import GlitchImages

    images = np.stack([class_image("Chirp", seed=s) for s in range(3)])
    labels = np.full(3, CLASSES.index("Chirp"))
    for mode in ("class", "generic"):
        first, second = (GlitchImages(images, labels, list(CLASSES), augmenter=aug.make_augmenter(mode),
                                               seed=5) for _ in range(2))
        for item in ((0, 0), (2, 0), (2, 3)):
            np.testing.assert_array_equal(first[item][0].numpy(), second[item][0].numpy())
        assert not np.array_equal(first[(2, 0)][0].numpy(), first[(2, 1)][0].numpy())  # a new epoch, a new draw


def test_preview_is_the_policy_drawn_from_one_seed():
    rng = np.random.default_rng(0)
    img = energy_to_rgb(rng.exponential(1.0, (224, 224)).astype(np.float32))
    shown = aug.preview(img, "Blip", seed=7, n=3, enabled={"loudness"})
    again = np.random.default_rng(7)
    for out, applied in shown:
        ref, ref_applied = aug.augment(img, "Blip", again, enabled={"loudness"})
        assert np.array_equal(out, ref) and [str(a) for a in applied] == [str(a) for a in ref_applied]
        assert all(str(a).startswith("glitch energy") for a in applied)
    generic = aug.preview(img, "Blip", seed=7, n=2, mode="generic")
    again = np.random.default_rng(7)
    assert all(np.array_equal(out, aug.generic_augment(img, again)[0]) for out, _ in generic)
    with pytest.raises(ValueError, match="not 'none'"):
        aug.preview(img, "Blip", seed=0, mode="none")
