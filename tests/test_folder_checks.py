"""The folder loader never gives a silent wrong result: spike times in seconds, spikes
outside the stimulus, missing WAVs, names in another case, mixed sample rates, empty files
and non-finite tokens each work or raise an error / warning naming the file; the counts of
what was kept and dropped are in ``dataset.meta["load_report"]``."""
import logging

import numpy as np
import pytest
from scipy.io import wavfile

from deepstrf_utils.datasets import load_dataset
from deepstrf_utils.datasets.folder import load_folder, read_spike_file


def _wav(path, sr=16000, dur_s=0.1, freq=1000.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(round(dur_s * sr))) / sr
    wavfile.write(path, sr, (0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype(np.int16))


def _spikes(root, unit, name, text):
    path = root / "spikes" / unit / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_spike_times_in_seconds_are_detected(tmp_path):
    _wav(tmp_path / "stimuli" / "a.wav", dur_s=1.0)
    _wav(tmp_path / "stimuli" / "b.wav", dur_s=0.5)
    _spikes(tmp_path, "u1", "a.txt", "0.051 0.312 0.72\n0.055 0.9\n")
    _spikes(tmp_path, "u1", "b.txt", "-0.02 0.1 0.43\n")
    with pytest.raises(ValueError, match=r"u1/a\.txt: expected spike times in ms.*7 spikes of unit u1 after "
                                         r"onset all lie within 0\.9 ms.*last 500-1000 ms.*time_unit='s'"):
        load_folder(tmp_path)
    ds = load_folder(tmp_path, time_unit="s")
    a = ds.responses[0][0]                                   # (R, T) of u1 to a
    assert a.shape == (2, 200)
    assert list(np.flatnonzero(a[0])) == [10, 62, 144] and list(np.flatnonzero(a[1])) == [11, 180]
    assert ds.meta["load_report"]["time_unit"] == "s"
    assert ds.meta["load_report"]["units"]["u1"] == {"spikes_kept": 7, "dropped_before": 1, "dropped_after": 0}
    ms = load_folder(tmp_path, time_unit="ms")             # asked for: read as ms, all in bin 0
    assert np.nansum(ms.responses[0][0][:, 0]) == 5
    with pytest.raises(ValueError, match="time_unit"):
        load_folder(tmp_path, time_unit="seconds")
    with pytest.raises(ValueError, match=r"expected dt_ms to be a bin width in ms .*got 0"):
        load_folder(tmp_path, dt_ms=0)


def test_spikes_outside_the_stimulus_are_counted_and_padding_keeps_them(tmp_path, caplog):
    _wav(tmp_path / "stimuli" / "a.wav", dur_s=0.1)        # 20 bins of 5 ms
    _spikes(tmp_path, "u1", "a.txt", "-20 10 95\n104 130\n")
    with caplog.at_level(logging.WARNING):
        ds = load_folder(tmp_path)
    assert ds.meta["load_report"]["units"]["u1"] == {"spikes_kept": 2, "dropped_before": 1, "dropped_after": 2}
    assert "dropped 3 of 5 spikes" in caplog.text and "u1 1/2" in caplog.text and "pad_after_ms" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        padded = load_folder(tmp_path, pad_before_ms=25, pad_after_ms=50)
    assert "dropped" not in caplog.text
    spec, resp = padded.stimuli[0], padded.responses[0][0]
    assert spec.shape == (34, 5 + 20 + 10) and resp.shape == (2, 35)
    assert list(np.flatnonzero(resp[0])) == [1, 7, 24] and list(np.flatnonzero(resp[1])) == [25, 31]
    assert (spec[:, :5] == 0).all() and (spec[:, 5 + 20 + 2:] == 0).all()      # silence; a 2-bin causal tail
    np.testing.assert_allclose(spec[:, 5:25], ds.stimuli[0], atol=1e-5)       # the sound itself unchanged
    assert padded.meta["load_report"]["units"]["u1"]["spikes_kept"] == 5
    with pytest.raises(ValueError, match=r"pad_after_ms to be a multiple of dt_ms=5 ms, got 12"):
        load_folder(tmp_path, pad_after_ms=12)
    np.save(tmp_path / "spikes" / "u1" / "b.npy", np.ones((1, 20)))
    _wav(tmp_path / "stimuli" / "b.wav", dur_s=0.1)
    with pytest.raises(ValueError, match=r"b\.npy: expected an array \(R, T\) with T=35 .*5 \+ 10 padding bins"):
        load_folder(tmp_path, pad_before_ms=25, pad_after_ms=50)


def test_missing_wav_is_a_warning_naming_it(tmp_path, caplog):
    _wav(tmp_path / "stimuli" / "a.wav")
    _wav(tmp_path / "stimuli" / "unheard.wav")
    _spikes(tmp_path, "u1", "a.txt", "1 2\n")
    _spikes(tmp_path, "u1", "song7.txt", "1 2\n")
    with caplog.at_level(logging.WARNING):
        ds = load_folder(tmp_path)
    assert list(ds.stim_names) == ["a"]
    assert "1 stimuli that have no WAV in stimuli/; skipped: song7" in caplog.text
    skipped = ds.meta["load_report"]["stimuli_skipped"]
    assert skipped["song7"].startswith("no WAV") and "u1/song7.txt" in skipped["song7"]
    assert skipped["unheard"] == "no unit has a response file for it"
    assert ds.meta["load_report"]["stimuli_used"] == ["a"]


def test_names_match_whatever_their_case(tmp_path):
    _wav(tmp_path / "stimuli" / "s1.WAV")
    _wav(tmp_path / "stimuli" / "S2.wav")
    _spikes(tmp_path, "u1", "S1.txt", "1 2\n3\n")
    _spikes(tmp_path, "u1", "s2.TXT", "7\n")
    ds = load_folder(tmp_path)
    assert list(ds.stim_names) == ["S2", "s1"] or list(ds.stim_names) == ["s1", "S2"]
    s1 = ds.responses[list(ds.stim_names).index("s1")][0]
    assert not np.isnan(s1).any() and s1.sum() == 3
    _wav(tmp_path / "stimuli" / "S1.wav")
    with pytest.raises(ValueError, match=r"one WAV per name, found .*S1\.wav and .*s1\.WAV"):
        load_folder(tmp_path)
    (tmp_path / "stimuli" / "S1.wav").unlink()
    np.save(tmp_path / "spikes" / "u1" / "s1.npy", np.ones((1, 20)))
    with pytest.raises(ValueError, match=r"one response file per name, found .*S1\.txt and .*s1\.npy"):
        load_folder(tmp_path)


def test_mixed_sample_rates_are_refused_or_resampled(tmp_path, caplog):
    _wav(tmp_path / "stimuli" / "a.wav", sr=16000)
    _wav(tmp_path / "stimuli" / "b.wav", sr=8000, freq=500.0)
    _spikes(tmp_path, "u1", "a.txt", "1\n")
    _spikes(tmp_path, "u1", "b.txt", "1\n")
    with pytest.raises(ValueError, match=r"one sample rate, found 8000 Hz: b\.wav; 16000 Hz: a\.wav.*"
                                         r"resample_to=16000"):
        load_folder(tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = load_folder(tmp_path, resample_to=16000, max_freq=7000)
    assert "b.wav: upsampled from 8000 Hz to 16000 Hz" in caplog.text
    assert ds.cf_hz[-1] == pytest.approx(7000) and ds.meta["load_report"]["resampled"] == {"b": 8000.0}
    assert ds.stimuli[0].shape == ds.stimuli[1].shape == (34, 20)
    (tmp_path / "stimuli" / "a.wav").unlink()
    with pytest.raises(ValueError, match=r"b\.wav \(sample rate 8000 Hz\): max_freq=7000 Hz is above the Nyquist"):
        load_folder(tmp_path, max_freq=7000)


def test_empty_files_and_non_finite_tokens_name_the_file(tmp_path):
    _wav(tmp_path / "stimuli" / "a.wav")
    path = _spikes(tmp_path, "u1", "a.txt", "")
    with pytest.raises(ValueError, match=r"u1/a\.txt is empty \(0 bytes\): expected one line of spike times"):
        load_folder(tmp_path)
    for token in ("nan", "inf", "-Infinity"):
        path.write_text(f"1.0 2.0\n3.0 {token} 4.0\n")
        with pytest.raises(ValueError, match=rf"u1/a\.txt, line 2: expected finite spike times, got '{token}'"):
            read_spike_file(path)
    path.write_text("\n")                        # one trial without spikes: fine
    ds = load_folder(tmp_path)
    assert ds.responses[0].shape == (1, 1, 20) and ds.responses[0].sum() == 0


def test_real_starling_recordings_report_and_padding(shared_data, caplog):
    path = shared_data / "meliza_starling" / "data" / "starling"
    if not path.is_dir():
        pytest.skip("Meliza starling recordings absent")
    units = ["st11_1_2_1", "st49_2_4_1"]
    trials = {u: np.concatenate(read_spike_file(path / "spikes" / u / "A8.txt")) for u in units}
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("folder", path=path)              # ms with pre-stimulus (negative) times: no error
    T = ds.stimuli[0].shape[1]
    report = ds.meta["load_report"]
    for u in units:                                          # the counts add up to the files' spikes
        t = trials[u]
        assert report["units"][u] == {"spikes_kept": int(((t >= 0) & (t < T * 5.0)).sum()),
                                      "dropped_before": int((t < 0).sum()), "dropped_after": int((t >= T * 5.0).sum())}
    assert report["units"]["st49_2_4_1"]["dropped_before"] > 0 and "pad_before_ms" in caplog.text
    assert set(report["stimuli_skipped"]) == {"A0", "B0", "B8", "C0", "C8"}      # responses without their WAV
    assert "skipped: A0, B0, B8, C0, C8" in caplog.text
    padded = load_dataset("folder", path=path, pad_before_ms=2000, pad_after_ms=1500)
    assert padded.stimuli[0].shape[1] == T + 400 + 300 and (padded.stimuli[0][:, :400] == 0).all()
    for n, u in enumerate(units):
        t = trials[u]
        kept = int(((t >= -2000) & (t < T * 5.0 + 1500)).sum())
        assert padded.meta["load_report"]["units"][u]["spikes_kept"] == kept == np.nansum(padded.responses[0][n])
        assert padded.meta["load_report"]["units"][u]["dropped_before"] == 0     # the recordings start at -1.9 s
