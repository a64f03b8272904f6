"""Real detector noise as the simulator's background: glitch-free stretches found, whitened, used."""

from __future__ import annotations

import numpy as np
import pytest

from glitchnet.omega.qtransform import SAMPLE_RATE_HZ
from glitchnet.simulate import simulate_glitch
from glitchnet.simulate.noise import SEGMENT_S
from glitchnet.simulate.realnoise import GLITCH_GUARD_S, RealNoiseError, real_noise, robust_std

STRAIN = "strain/H-H1_GWOSC_O3b_4KHZ_R1-1266281937-128.hdf5"
LOUD_GPS = 1266281982.66  # a very loud glitch in that file (SOURCES.md)


def _gaussian(seconds: float, rate: float = 4096.0, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 1e-21


def test_a_glitch_in_the_strain_is_kept_out_of_every_block():
    rate = 4096.0
    strain = _gaussian(40.0, rate)
    t_glitch = 20.0
    i = int(t_glitch * rate)
    strain[i:i + 40] += 3e-19 * np.hanning(40)  # a loud short transient
    noise = real_noise(strain, rate, "synthetic")
    n = int(SEGMENT_S * SAMPLE_RATE_HZ)
    at = (t_glitch - 1.0) * SAMPLE_RATE_HZ  # the whitened series starts after the 1 s taper
    guard = GLITCH_GUARD_S * SAMPLE_RATE_HZ
    assert len(noise.starts) > 0
    assert not ((noise.starts < at + guard) & (noise.starts + n > at - guard)).any()
    assert 2 * GLITCH_GUARD_S <= noise.excluded_s <= 2 * GLITCH_GUARD_S + 1.0
    block = noise.block(np.random.default_rng(0), n)
    assert block.shape == (n,) and abs(robust_std(block) - 1.0) < 0.1


@pytest.mark.parametrize(("strain", "rate", "message"), [
    (_gaussian(5.0), 4096.0, "at least 10 s"),
    (_gaussian(40.0, 2048.0), 2048.0, "at least 4096 Hz"),
    (np.full(int(40 * 4096), 1e-21), 4096.0, "constant"),
    (np.concatenate([_gaussian(20.0), [np.nan], _gaussian(20.0)]), 4096.0, "gaps"),
])
def test_unusable_strain_is_refused_in_one_line(strain, rate, message):
    with pytest.raises(RealNoiseError, match=message):
        real_noise(strain, rate, "x")


def test_the_real_o3b_strain_gives_clean_blocks_and_new_backgrounds(real):
    pytest.importorskip("h5py", reason="reading strain needs the strain extra (gwpy, h5py)")
    from glitchnet.strain import read_strain

    strain, t0, rate, _ = read_strain(real / STRAIN)
    noise = real_noise(strain, rate, "O3b H1")
    loud = (LOUD_GPS - t0 - 1.0) * SAMPLE_RATE_HZ
    n = int(SEGMENT_S * SAMPLE_RATE_HZ)
    assert len(noise.starts) > 100 and noise.excluded_s > 2
    assert not ((noise.starts <= loud) & (noise.starts + n >= loud)).any()  # the loud glitch is never a background
    gaussian, _ = simulate_glitch("No_Glitch", 3)
    first, row = simulate_glitch("No_Glitch", 3, noise=noise)
    again, _ = simulate_glitch("No_Glitch", 3, noise=noise)
    assert row["noise"] == "O3b H1"
    assert np.array_equal(np.asarray(first[1.0]), np.asarray(again[1.0]))  # a seed gives the same glitch
    assert not np.array_equal(np.asarray(first[1.0]), np.asarray(gaussian[1.0]))
