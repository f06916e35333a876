"""NWB in and out: miniature NWB files built here (2 units, 3 stimuli x 5 repeats, a pupil
trace), their errors, the exact round trip of to_nwb -> load_dataset("nwb"), predictions
stored beside the recording, nwbinspector, and the notebooks' ``DATASETS=nwb:<path>``.

Everything that reads or writes NWB skips cleanly without the optional extra ``[nwb]``.
"""
import datetime
import logging
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.io import wavfile

from deepstrf_utils.datasets import dataset_spec, load_dataset
from deepstrf_utils.datasets.nwb import nwb_files, nwb_label, require_pynwb
from deepstrf_utils.datasets.io import bin_spike_times
from deepstrf_utils.spectrogram import cochleagram_set

SR = 16000
DURS = {"s1": 0.30, "s2": 0.25, "s3": 0.35}
ONSETS = [1.0 + 0.7 * k for k in range(15)]            # s1 s2 s3 s1 s2 s3 ... (5 repeats each)
START = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
SUBJECT = {"subject_id": "ferret1", "species": "Mustela putorius furo", "sex": "F", "age": "P1Y"}


def _sound(name):
    rng = np.random.default_rng(sorted(DURS).index(name))
    t = np.arange(int(round(DURS[name] * SR))) / SR
    return 0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * (1000 + 2000 * sorted(DURS).index(name)) * t)


def _order():
    return [sorted(DURS)[k % 3] for k in range(15)]


def unit1_spikes():
    """u1: one spike in bins 2 and 20 of every presentation, one in bin 6 + r of repeat r."""
    out = []
    for k, onset in enumerate(ONSETS):
        r = k // 3
        out += [onset + 0.0125, onset + 0.101, onset + 0.0325 + 0.005 * r]
    return np.sort(out)


def unit2_spikes():
    """u2: bin 0 of every presentation of s1, and one spike 17.5 ms before every onset."""
    onset_s1 = [o for o, s in zip(ONSETS, _order()) if s == "s1"]
    return np.sort([o + 0.0025 for o in onset_s1] + [o - 0.0175 for o in ONSETS])


def make_nwb(path, units=True, column="stimulus", identities=None, overlap=False, drop_waveform=None,
             clock_unit=False, pupil=True, trials=True, continuous=False):
    """A miniature auditory NWB file (pynwb + ndx-sound), variants broken on purpose."""
    pynwb = pytest.importorskip("pynwb")
    pytest.importorskip("ndx_sound")
    from ndx_sound import AcousticWaveformSeries
    from pynwb.behavior import PupilTracking

    nwb = pynwb.NWBFile(session_description="mini", identifier="mini", session_start_time=START,
                        subject=pynwb.file.Subject(**SUBJECT))
    if continuous:        # one microphone recording of the whole session instead of one sound per stimulus
        mic = np.zeros(int(13 * SR))
        for onset, name in zip(ONSETS, _order()):
            mic[int(round(onset * SR)):int(round(onset * SR)) + _sound(name).size] = _sound(name)
        nwb.add_acquisition(AcousticWaveformSeries(name="microphone", data=mic, rate=float(SR), starting_time=0.0,
                                                   description="sound at the animal's ear"))
    for name in sorted(DURS) if not continuous else []:
        if name != drop_waveform:
            nwb.add_stimulus_template(AcousticWaveformSeries(name=name, data=_sound(name), rate=float(SR),
                                                             starting_time=0.0, description=f"sound {name}"))
    if trials:
        if column:
            nwb.add_trial_column(column, "sound presented")
        ids = identities or _order()
        for k, (onset, name) in enumerate(zip(ONSETS, ids)):
            start = onset - (0.5 if overlap and k == 1 else 0.0)
            kw = {column: name} if column else {}
            nwb.add_trial(start_time=start, stop_time=start + DURS.get(name, 0.3), **kw)
    if units:
        device = nwb.create_device("probe")
        group = nwb.create_electrode_group("shank0", description="tetrode", location="A1", device=device)
        for loc in ("A1", "PEG"):
            nwb.add_electrode(group=group, location=loc, x=0.0, y=0.0, z=0.0)
        nwb.add_unit_column("unit_name", "unit id")
        nwb.add_unit_column("quality", "sorting label")
        nwb.add_unit(spike_times=unit1_spikes(), electrodes=[0], electrode_group=group, unit_name="u1", quality="good")
        nwb.add_unit(spike_times=unit2_spikes(), electrodes=[1], electrode_group=group, unit_name="u2", quality="mua")
        if clock_unit:    # spike times in ms: far beyond every presentation
            nwb.add_unit(spike_times=unit1_spikes() * 1000, electrodes=[0], electrode_group=group, unit_name="u3",
                         quality="good")
    if pupil:
        t = (np.arange(int(13 * 1000)) + 0.5) / 1000.0           # 1 kHz, samples mid-millisecond
        behavior = nwb.create_processing_module("behavior", "behaviour")
        behavior.add(PupilTracking(time_series=pynwb.TimeSeries(name="pupil_diameter", data=t, timestamps=t,
                                                                unit="m", description="pupil = time")))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@pytest.fixture
def mini(tmp_path):
    return make_nwb(tmp_path / "mini.nwb")


# ----------------------------------------------------------------------------- reading
def test_mini_file_units_presentations_counts_stimuli_states(mini, caplog):
    with caplog.at_level(logging.WARNING):
        ds = load_dataset("nwb", path=mini, states=["pupil_diameter"])
    assert ds.name == "nwb_mini" and ds.stim_names == ["s1", "s2", "s3"] and ds.dt_ms == 5.0
    assert list(ds.neuron_ids) == ["u1", "u2"] and list(ds.n_repeats) == [5, 5, 5]
    assert ds.neurons[["id", "quality", "location", "area", "electrode_group_name"]].values.tolist() == [
        ["u1", "good", "A1", "A1", "shank0"], ["u2", "mua", "PEG", "PEG", "shank0"]]
    expected, cf, _ = cochleagram_set([(_sound(n), SR) for n in sorted(DURS)], hop_ms=5.0)
    for got, want in zip(ds.stimuli, expected):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(ds.cf_hz, cf)
    for i, name in enumerate(ds.stim_names):
        r = ds.responses[i]
        assert r.shape == (2, 5, int(DURS[name] * 200))
        for rep in range(5):
            want = np.zeros(r.shape[2])
            want[[2, 20, 6 + rep]] = 1
            np.testing.assert_array_equal(r[0, rep], want)
            want2 = np.zeros(r.shape[2])
            want2[0] = name == "s1"
            np.testing.assert_array_equal(r[1, rep], want2)
    # pupil = time: per bin the mean of its 5 samples = the bin centre, averaged over repeats
    onsets = [np.mean([o for o, s in zip(ONSETS, _order()) if s == n]) for n in ds.stim_names]
    for st, onset, T in zip(ds.states, onsets, ds.n_bins):
        np.testing.assert_allclose(st[0], onset + (np.arange(T) + 0.5) * 0.005, rtol=1e-6)
    assert ds.state_names == ["pupil_diameter"]
    summary = ds.meta["summary"]
    assert "2 units, 3 stimuli x 5 repeats" in summary and "15 presentations" in summary
    assert f"{3 * 15 + 5} of {3 * 15 + 20} spikes inside" in summary       # u2's pre-onset spikes are outside
    assert any("read mini.nwb: 2 units" in r.getMessage() for r in caplog.records)


def test_padding_keeps_silence_and_spikes_around_the_sound(mini):
    plain = load_dataset("nwb", path=mini)
    ds = load_dataset("nwb", path=mini, pad_before_ms=50, pad_after_ms=100)
    assert ds.meta["nwb"]["pad_before_ms"] == 50 and ds.meta["nwb"]["pad_after_ms"] == 100
    # the front end pads the waveforms as the folder loader does: the sound's last samples
    # reach the first bins after it (the causal analysis window), then silence
    expected, _, _ = cochleagram_set([(_sound(n), SR) for n in ds.stim_names], hop_ms=5.0, pad_bins=(10, 20))
    for a, b, e in zip(plain.stimuli, ds.stimuli, expected):
        assert b.shape[1] == a.shape[1] + 30
        np.testing.assert_array_equal(b, e)
        np.testing.assert_array_equal(b[:, 10:-20], a)
        assert not b[:, :10].any() and b[:, -20].any() and not b[:, -18:].any()
    np.testing.assert_array_equal(ds.responses[0][:, :, 10:-20], plain.responses[0][:, :, :])
    assert (ds.responses[0][1, :, 6] == 1).all()           # u2's spike 17.5 ms before each onset
    # the sound after: the next presentation starts 0.7 s later, beyond the 100 ms kept
    with pytest.raises(ValueError, match="multiple of dt_ms"):
        load_dataset("nwb", path=mini, pad_before_ms=7)


def test_fit_and_evaluate_run_on_the_loaded_dataset(mini):
    from deepstrf_utils.models import LinearNonlinear, StateGainModel, build_model
    from deepstrf_utils.training import evaluate, fit, fit_sessions

    ds = load_dataset("nwb", path=mini, states=["pupil_diameter"])
    train, val, test = ds.split(seed=0)
    model = LinearNonlinear(n_bands=ds.n_bands, n_neurons=ds.n_neurons, n_lags=8, dt_ms=ds.dt_ms,
                            prefilter="adaptrans", prefilter_kwargs={"cf_hz": list(ds.cf_hz)})
    result = fit(model, train, val, max_epochs=3)
    scores = evaluate(model, test)
    assert result.epochs >= 1 and list(scores["neuron"]) == ["u1", "u2"] and np.isfinite(scores["cc_raw"]).any()
    gain = StateGainModel(build_model("Linear", n_bands=ds.n_bands, n_neurons=ds.n_neurons, n_lags=8),
                          n_states=1, state_names=ds.state_names)
    assert fit_sessions(gain, train, val, max_epochs=2, progress=False).epochs == 2


def test_other_identity_column_wav_folder_and_sound_series(tmp_path):
    path = make_nwb(tmp_path / "named.nwb", column="sound", drop_waveform="s2")
    with pytest.raises(ValueError, match=r"stimulus 's2' \(5 presentations\) has no waveform"):
        load_dataset("nwb", path=path)
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for name in DURS:
        wavfile.write(wavs / f"{name.upper()}.WAV", SR, _sound(name))
    ds = load_dataset("nwb", path=path, wav_dir=wavs)
    assert ds.meta["nwb"]["stimulus_column"] == "sound" and ds.meta["nwb"]["stimuli_from"] == "wav_dir"
    expected, _, _ = cochleagram_set([(_sound(n), SR) for n in sorted(DURS)], hop_ms=5.0)
    np.testing.assert_array_equal(ds.stimuli[1], expected[1])
    path = make_nwb(tmp_path / "mic.nwb", continuous=True)
    with pytest.raises(ValueError, match="sound_series=<a continuous sound series>"):
        load_dataset("nwb", path=path)
    ds = load_dataset("nwb", path=path, sound_series="microphone")
    for got, want in zip(ds.stimuli, expected):
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("kwargs, error, message", [
    ({"units": False}, ValueError, "expected a units table"),
    ({"column": None}, ValueError, "have no stimulus identity: expected a column naming the sound"),
    ({"identities": ["s1", "", "s3"] * 5}, ValueError, r"presentations \[1, 4, 7, 10, 13\] of 'trials' have no "
                                                       "stimulus identity"),
    ({"drop_waveform": "s3"}, ValueError, r"stimulus 's3' \(5 presentations\) has no waveform"),
    ({"overlap": True}, ValueError, r"presentations overlap in 'trials': row 0 \('s1', 1.0000-1.3000 s\) and row 1"),
    ({"clock_unit": True}, ValueError, r"unit\(s\) \['u3'\] lie outside every presentation window"),
    ({"trials": False}, ValueError, "expected sound presentations in the TimeIntervals table 'trials'"),
])
def test_each_bad_file_raises_its_error(tmp_path, kwargs, error, message):
    path = make_nwb(tmp_path / "bad.nwb", **kwargs)
    with pytest.raises(error, match=message):
        load_dataset("nwb", path=path)


def test_bad_paths_and_options(tmp_path, mini):
    pytest.importorskip("pynwb")
    with pytest.raises(FileNotFoundError, match="expected an NWB file"):
        load_dataset("nwb", path=tmp_path / "none.nwb")
    (tmp_path / "junk.nwb").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="could not read .* as an NWB file"):
        load_dataset("nwb", path=tmp_path / "junk.nwb")
    with pytest.raises(ValueError, match="expected path=<file.nwb>"):
        load_dataset("nwb")
    with pytest.raises(ValueError, match="expected units= among the unit ids"):
        load_dataset("nwb", path=mini, units=["u9"])
    assert list(load_dataset("nwb", path=mini, units=["u2"]).neuron_ids) == ["u2"]
    with pytest.raises(ValueError, match="expected one TimeSeries named 'pupil'.*pupil_diameter"):
        load_dataset("nwb", path=mini, states=["pupil"])
    with pytest.raises(ValueError, match="no stored spectrogram"):
        load_dataset("nwb", path=mini, stimuli="spectrogram")


def test_units_outside_the_presentations_can_be_left_out(tmp_path):
    path = make_nwb(tmp_path / "clock.nwb", clock_unit=True)
    assert list(load_dataset("nwb", path=path, units=["u1", "u2"]).neuron_ids) == ["u1", "u2"]


def test_require_pynwb_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with pytest.raises(ImportError, match=r"deepstrf_utils\[nwb\]"):
        require_pynwb()


# ----------------------------------------------------------------------------- writing
def test_spike_times_from_counts_rebin_exactly():
    pytest.importorskip("pynwb")
    from deepstrf_utils.datasets.nwb_write import spike_times_from_counts

    counts = np.random.default_rng(0).poisson(1.5, 2000).astype(np.float32)
    for start in (0.0, 1234.567, 98765.4321):
        t = spike_times_from_counts(counts, start, 5.0)
        assert t.size == counts.sum() and np.all(np.diff(t) > 0)
        np.testing.assert_array_equal(bin_spike_times((t - start) * 1000.0, counts.size, 5.0), counts)


def _small_synthetic(tmp_path):
    from deepstrf_utils.datasets import plant_state_gain

    ds = plant_state_gain(load_dataset("synthetic", root=tmp_path / "data", n_neurons=5, n_clips=4, clip_s=1.0,
                                       n_repeats=4), seed=1)
    responses = [r.copy() for r in ds.responses]
    responses[1][2, 3] = np.nan                 # neuron 2 missed trial 3 of stimulus 1
    responses[2][:, :, 150:] = np.nan           # every neuron lost the end of stimulus 2
    responses[0][:, 3] = np.nan                 # no neuron has trial 3 of stimulus 0: not a presentation
    return ds.replace(responses=responses)


def test_round_trip_is_exact(tmp_path):
    pytest.importorskip("pynwb")
    from deepstrf_utils.datasets import to_nwb

    ds = _small_synthetic(tmp_path)
    path = to_nwb(ds, tmp_path / "syn.nwb", subject=SUBJECT, session_start_time=START)
    back = load_dataset("nwb", path=path)
    assert back.stim_names == ds.stim_names and back.stim_types == ds.stim_types
    assert list(back.neuron_ids) == list(ds.neuron_ids) and back.name == ds.name and back.dt_ms == ds.dt_ms
    np.testing.assert_array_equal(back.cf_hz, ds.cf_hz)
    for a, b in zip(ds.stimuli, back.stimuli):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.responses[0], ds.responses[0][:, :3])   # the trial nobody had
    for a, b in zip(ds.responses[1:], back.responses[1:]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(ds.states, back.states):
        np.testing.assert_array_equal(a, b)
    assert back.state_names == ds.state_names and back.split_spec == ds.split_spec
    pd.testing.assert_frame_equal(back.neurons, ds.neurons)
    assert {k: back.meta[k] for k in ds.meta} == ds.meta
    assert back.meta["nwb"]["stimuli_from"] == "spectrogram"
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_nwb(ds, path)
    with pytest.raises(ValueError, match="stored spectrograms have 5 ms bins, got dt_ms=10"):
        load_dataset("nwb", path=path, dt_ms=10)


def test_round_trip_of_a_folder_dataset_with_its_waveforms(tmp_path):
    pytest.importorskip("pynwb")
    from deepstrf_utils.datasets import to_nwb
    from deepstrf_utils.datasets.folder import load_folder

    folder = tmp_path / "rec"
    (folder / "stimuli").mkdir(parents=True)
    for name in DURS:
        wavfile.write(folder / "stimuli" / f"{name}.wav", SR, (_sound(name) * 20000).astype(np.int16))
    rng = np.random.default_rng(3)
    for unit in ("a", "b"):
        (folder / "spikes" / unit).mkdir(parents=True)
        for name, dur in DURS.items():
            lines = [" ".join(f"{v:.3f}" for v in np.sort(rng.uniform(0, dur * 1000, 12))) for _ in range(4)]
            (folder / "spikes" / unit / f"{name}.txt").write_text("\n".join(lines) + "\n")
    ds = load_folder(folder)
    path = to_nwb(ds, tmp_path / "rec.nwb", waveforms=folder / "stimuli", subject=SUBJECT, intervals="sounds")
    for mode in ("auto", "spectrogram"):
        back = load_dataset("nwb", path=path, stimuli=mode, intervals="sounds")
        assert back.meta["nwb"]["stimuli_from"] == ("waveform" if mode == "auto" else "spectrogram")
        for a, b in zip(ds.stimuli, back.stimuli):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(ds.responses, back.responses):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="gives 60 bins of 5 ms, the dataset's stimulus has 62"):
        to_nwb(ds.replace(stimuli=[np.pad(s, ((0, 0), (0, 2))) for s in ds.stimuli],
                          responses=[np.pad(r, ((0, 0), (0, 0), (0, 2))) for r in ds.responses]),
               tmp_path / "x.nwb", waveforms=folder / "stimuli")


def test_round_trip_of_a_read_file_with_float64_sounds(tmp_path, mini):
    from deepstrf_utils.datasets import to_nwb

    ds = load_dataset("nwb", path=mini, states=["pupil_diameter"])
    path = to_nwb(ds, tmp_path / "again.nwb", waveforms={n: (_sound(n), SR) for n in DURS}, subject=SUBJECT)
    back = load_dataset("nwb", path=path)                 # its sounds -> the same cochleagrams
    assert back.meta["nwb"]["stimuli_from"] == "waveform" and back.state_names == ["pupil_diameter"]
    for a, b in zip(ds.stimuli + ds.responses + ds.states, back.stimuli + back.responses + back.states):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(back.neurons, ds.neurons)


def test_to_nwb_refuses_what_it_cannot_write(tmp_path):
    pytest.importorskip("pynwb")
    from deepstrf_utils.datasets import to_nwb

    ds = load_dataset("synthetic", root=tmp_path / "data", n_neurons=2, n_clips=3, clip_s=0.5, n_repeats=2)
    vm = ds.replace(responses=[r * 0.37 for r in ds.responses])
    with pytest.raises(ValueError, match="not a count"):
        to_nwb(vm, tmp_path / "vm.nwb")
    with pytest.raises(TypeError, match="expected waveforms as a folder of WAVs"):
        to_nwb(ds, tmp_path / "w.nwb", waveforms=[1, 2])
    assert not list(tmp_path.glob("*.nwb"))


def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    pynwb = pytest.importorskip("pynwb")
    from deepstrf_utils.datasets import to_nwb

    ds = load_dataset("synthetic", root=tmp_path / "data", n_neurons=2, n_clips=3, clip_s=0.5, n_repeats=2)

    def broken(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pynwb.NWBHDF5IO, "write", broken)
    with pytest.raises(KeyboardInterrupt):
        to_nwb(ds, tmp_path / "cut.nwb")
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".nwb" or ".tmp" in p.name]


@pytest.mark.filterwarnings("ignore:Neither source_timeseries")   # pynwb's advice, when nwbinspector reads
def test_predictions_beside_the_recording_and_nwbinspector(tmp_path, mini):
    pytest.importorskip("pynwb")
    from deepstrf_utils.datasets import read_predictions, to_nwb
    from deepstrf_utils.models import LinearNonlinear, build_model
    from deepstrf_utils.training import evaluate, fit, predict, predictions_to_nwb

    ds = load_dataset("nwb", path=mini, pad_before_ms=20)
    train, val, test = ds.split(seed=0)
    model = LinearNonlinear(n_bands=ds.n_bands, n_neurons=ds.n_neurons, n_lags=8, dt_ms=ds.dt_ms)
    result = fit(model, train, val, max_epochs=2)
    scores = evaluate(model, test)
    predictions_to_nwb(mini, model, test, name="LN", scores=scores, fit_result=result, seed=0)
    stored = read_predictions(mini)["LN"]
    assert stored["stim_names"] == test.stim_names and stored["neuron_ids"] == ["u1", "u2"]
    for a, b in zip(stored["predictions"], predict(model, test)):
        np.testing.assert_array_equal(a, b)
    card = stored["card"]
    assert card["model"] == "LinearNonlinear" and card["seed"] == 0 and card["fit"] == result.summary()
    rebuilt = build_model(card["model"], **card["config"])
    assert sum(p.numel() for p in rebuilt.parameters()) == card["n_parameters"]
    pd.testing.assert_frame_equal(stored["scores"], scores, check_dtype=False)
    with pytest.raises(ValueError, match="already holds predictions named 'LN'"):
        predictions_to_nwb(mini, model, test, name="LN")
    again = load_dataset("nwb", path=mini, pad_before_ms=20)        # the recording reads as before
    for a, b in zip(ds.responses, again.responses):
        np.testing.assert_array_equal(a, b)

    inspector = pytest.importorskip("nwbinspector")
    written = to_nwb(_small_synthetic(tmp_path), tmp_path / "syn.nwb")  # no subject: the unknown values
    predictions_to_nwb(written, model.__class__(n_bands=34, n_neurons=5, n_lags=8), load_dataset("nwb", path=written),
                       name="untrained LN")
    for path in (mini, written):
        critical = [m for m in inspector.inspect_nwbfile(nwbfile_path=str(path))
                    if m.importance == inspector.Importance.CRITICAL]
        assert not critical, [(m.check_function_name, m.message) for m in critical]


# ----------------------------------------------------------------------------- notebooks
def test_dataset_names_for_nwb_files(tmp_path, mini):
    from deepstrf_utils.datasets import available_datasets
    from deepstrf_utils.runs.profiles import get_profile, parse_datasets

    assert nwb_label("/x/My Rec-1.nwb") == "nwb_my_rec_1"
    assert parse_datasets("ns1, nwb:/Data/Rec.nwb") == ["ns1", "nwb:/Data/Rec.nwb"]
    assert dataset_spec("nwb:/Data/Rec.nwb") == ("nwb", {"path": "/Data/Rec.nwb"})
    (tmp_path / "data" / "nwb").mkdir(parents=True)
    (tmp_path / "data" / "nwb" / "Site_A.nwb").write_bytes(mini.read_bytes())
    assert nwb_files(tmp_path / "data") == {"nwb_site_a": tmp_path / "data" / "nwb" / "Site_A.nwb"}
    assert "nwb_site_a" in available_datasets(tmp_path / "data")
    assert load_dataset("nwb_site_a", root=tmp_path / "data").n_neurons == 2
    profile, names = get_profile("smoke").resolve_datasets(f"nwb:{mini.name}", tmp_path / "data", base=mini.parent)
    assert names == ["nwb_mini"] and profile.options_for("nwb_mini") == {"path": str(mini)}
    config = profile.config("nwb_mini", "LinearNonlinear", "adaptrans")
    assert load_dataset(config["dataset"], root=tmp_path / "data", **config["dataset_options"]).stim_names == [
        "s1", "s2", "s3"]
    with pytest.raises(ValueError, match="resolve_datasets"):
        get_profile("smoke").datasets(f"nwb:{mini}")
    with pytest.raises(FileNotFoundError, match="expected an NWB file for dataset"):
        get_profile("smoke").resolve_datasets("nwb:missing.nwb", tmp_path / "data", base=tmp_path)
    with pytest.raises(FileNotFoundError, match="put the file in .*nwb/ or name it nwb:<path>"):
        get_profile("smoke").resolve_datasets("nwb_other", tmp_path / "data")


@pytest.mark.notebook
def test_notebook_01_runs_on_an_nwb_file(tmp_path, mini):
    pm = pytest.importorskip("papermill")
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo / "scripts"))
    try:
        from run_notebooks import absolute_nwb_paths, kernel_name
    finally:
        sys.path.pop(0)
    assert absolute_nwb_paths(f"synthetic, nwb:{mini.name}", base=mini.parent) == f"synthetic,nwb:{mini}"
    book = repo / "notebooks" / "01_datasets.ipynb"
    pm.execute_notebook(str(book), str(tmp_path / book.name), kernel_name=kernel_name(), cwd=str(book.parent),
                        progress_bar=False, parameters={
                            "PROFILE": "smoke", "DATASETS": f"nwb:{mini}", "DEVICE": "cpu",
                            "DATA_ROOT": str(tmp_path / "data"), "FIG_DIR": str(tmp_path / "figures"),
                            "RESULTS_DIR": str(tmp_path / "results")})
    assert (tmp_path / "figures" / "fig_datasets_nwb_mini.png").exists()


def test_bin_time_series_known_answer():
    from deepstrf_utils.datasets.state import bin_time_series

    t = np.array([0.1, 0.2, 0.35, 0.9, 1.5])
    v = np.array([[1.0], [3.0], [np.nan], [5.0], [7.0]])
    got = bin_time_series(t, v, np.array([0.0, 0.3, 0.4, 0.6, 1.0, 2.0, 3.0]))
    # mean of 2 samples; only a NaN sample; no sample: interpolated at 0.5 between 0.2 and 0.9; one; one; beyond
    np.testing.assert_allclose(got, [[2.0, np.nan, 3.0 + 2.0 * 0.3 / 0.7, 5.0, 7.0, np.nan]])


def test_the_shared_torc_unit_round_trips(tmp_path, shared_data):
    pytest.importorskip("pynwb")
    from deepstrf_utils.datasets import to_nwb

    folder = shared_data / "torc_ferret_a1"
    if not folder.is_dir():
        pytest.skip(f"no {folder}")
    ds = load_dataset("torc", path=folder)
    back = load_dataset("nwb", path=to_nwb(ds, tmp_path / "torc.nwb", subject=SUBJECT))
    for a, b in zip(ds.stimuli + ds.responses, back.stimuli + back.responses):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(back.neurons, ds.neurons)
    assert back.split_spec == ds.split_spec and {k: back.meta[k] for k in ds.meta} == ds.meta
    assert [list(p) for p in back.split_indices(3)] == [list(p) for p in ds.split_indices(3)]
