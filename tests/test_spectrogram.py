"""Tests of the auditory front end (deepstrf_utils.spectrogram)."""
import numpy as np
import pytest
from scipy.io import wavfile

from deepstrf_utils.spectrogram import (apply_floor, band_centre_frequencies, cochleagram,
                                        load_wav, log_band_filterbank, n_frames)

SR = 48000


def _tone(freq, dur_s=0.5, sr=SR, amp=0.5):
    t = np.arange(int(round(dur_s * sr))) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def test_band_centres_ns1_defaults():
    cf = band_centre_frequencies()
    assert cf.shape == (34,)
    assert cf[0] == pytest.approx(500.0)
    assert cf[-1] == pytest.approx(22627.0)
    # 1/6 octave spacing: 500 * 2**5.5 = 22627.4
    np.testing.assert_allclose(np.diff(np.log2(cf)), np.log2(22627.0 / 500) / 33)


@pytest.mark.parametrize("band", [0, 5, 12, 20, 27, 33])
def test_pure_tone_peaks_in_its_band(band):
    cf = band_centre_frequencies()
    # a tone inside the band, a quarter of the way to the next band centre (in log)
    ratio = cf[1] / cf[0]
    for f in (cf[band], cf[band] * ratio ** 0.25, cf[band] / ratio ** 0.25):
        if f > SR / 2:
            continue
        spec, cf_out = cochleagram(_tone(f), SR)
        assert spec.shape == (34, n_frames(int(0.5 * SR), SR, 5.0))
        assert int(np.argmax(spec[:, 10:].mean(axis=1))) == band, f


def test_frame_count_ns1_clip_and_floor_rule():
    # NS1 clip: 4.995 s -> 999 bins of 5 ms, at a non-integer samples-per-bin rate too
    for sr in (48000, 44100, 48828.125):
        assert n_frames(int(round(4.995 * sr)), sr, 5.0) == 999
    spec, _ = cochleagram(np.random.default_rng(0).standard_normal(int(4.995 * SR)) * 0.1, SR)
    assert spec.shape == (34, 999) and spec.dtype == np.float32
    # floor-based: 12 ms at 5 ms bins -> 2 bins; 9.9 ms -> 1 bin
    assert cochleagram(np.ones(int(0.012 * SR)), SR)[0].shape == (34, 2)
    assert cochleagram(np.ones(int(0.0099 * SR)), SR)[0].shape == (34, 1)


def test_silence_maps_to_floor_and_output_nonnegative():
    spec, _ = cochleagram(np.zeros(SR // 2), SR)
    assert np.all(spec == 0.0)
    # tone then silence: the silent part sits at the floor (0), the tone reaches the max (60)
    x = np.concatenate([_tone(2000, 0.2), np.zeros(int(0.2 * SR))])
    spec, _ = cochleagram(x, SR, threshold_db=60.0)
    assert spec.min() >= 0.0
    assert spec.max() == pytest.approx(60.0)
    assert np.all(spec[:, -20:] == 0.0)


def test_causal_framing():
    # a click at 100 ms must not show up in any bin that ends before 100 ms
    x = np.zeros(SR // 2)
    x[int(0.1 * SR)] = 1.0
    spec, _ = cochleagram(x, SR)
    assert np.all(spec[:, :20] == 0.0)     # bins 0..19 end at <= 100 ms
    assert spec[:, 20].max() > 0.0          # bin 20 = [100, 105) ms contains it


def test_threshold_and_reference():
    x = _tone(1000, 0.3)
    raw, _ = cochleagram(x, SR, threshold_db=None)
    np.testing.assert_allclose(apply_floor(raw, 60.0), cochleagram(x, SR)[0], atol=1e-4)
    # a common reference 20 dB above this clip's max lowers the clip's max to 40
    ref = float(raw.max()) + 20.0
    assert apply_floor(raw, 60.0, ref_db=ref).max() == pytest.approx(40.0, abs=1e-3)
    # doubling the amplitude raises the levels by 6.02 dB
    raw2, _ = cochleagram(2 * x, SR, threshold_db=None)
    assert raw2.max() - raw.max() == pytest.approx(20 * np.log10(2), abs=1e-3)


def test_filterbank_rows_sum_to_one_and_are_never_empty():
    cf = band_centre_frequencies(34, 500.0, 22627.0)
    fb = log_band_filterbank(cf, SR, 512)   # coarse FFT: low bands narrower than a bin
    np.testing.assert_allclose(fb.sum(axis=1), 1.0)
    assert np.all((fb > 0).sum(axis=1) >= 1)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="Nyquist.*sr=20000.*max_freq <= 9500"):
        cochleagram(np.zeros(2000), 20000)
    with pytest.raises(ValueError, match="1-D waveform"):
        cochleagram(np.zeros((100, 2)), SR)
    with pytest.raises(ValueError, match="non-empty"):
        cochleagram(np.zeros(0), SR)
    with pytest.raises(ValueError, match="positive sample rate"):
        cochleagram(np.zeros(100), 0)
    with pytest.raises(ValueError, match="finite"):
        cochleagram(np.array([0.0, np.nan] * 500), SR)
    with pytest.raises(ValueError, match="shorter than one"):
        cochleagram(np.zeros(10), SR)


def test_load_wav_int16_stereo_and_errors(tmp_path):
    wave = (_tone(1000, 0.1) * 32767).astype(np.int16)
    path = tmp_path / "stim"           # NS1 stimuli have no extension
    wavfile.write(path, SR, np.stack([wave, wave], axis=1))
    x, sr = load_wav(path)
    assert sr == SR and x.shape == (wave.size,)
    np.testing.assert_allclose(x, wave / 32768.0)
    with pytest.raises(ValueError, match="sample rate 48000 Hz, expected sr=44100"):
        load_wav(path, sr=44100)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ValueError, match="truncated.wav"):
        load_wav(truncated)
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        load_wav(tmp_path / "missing.wav")
