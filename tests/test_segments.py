"""split_in_time: one long stimulus cut into equal segments that the usual split can draw from."""
import numpy as np
import pytest

from deepstrf_utils.datasets import ResponseDataset, load_dataset, split_in_time


def _long_dataset(n_bins=103, states=False):
    rng = np.random.default_rng(0)
    stim = rng.random((4, n_bins)).astype(np.float32)
    resp = np.arange(2 * 3 * n_bins, dtype=np.float32).reshape(2, 3, n_bins)
    resp[1, 2] = np.nan  # a unit with fewer trials
    return ResponseDataset([stim], [resp], dt_ms=5.0, cf_hz=[500, 1000, 2000, 4000], stim_names=["song"],
                           name="one_song", meta={"source": "test"},
                           states=[rng.random((1, n_bins))] if states else None,
                           state_names=["pupil"] if states else None)


def test_segments_are_consecutive_equal_and_carry_responses_and_states():
    ds = _long_dataset(states=True)
    seg = split_in_time(ds, 10)
    assert seg.n_stimuli == 10 and set(seg.n_bins.tolist()) == {10}
    assert seg.stim_names[:2] == ["song[0]", "song[1]"]
    for k in range(10):
        np.testing.assert_array_equal(seg.stimuli[k], ds.stimuli[0][:, 10 * k:10 * (k + 1)])
        np.testing.assert_array_equal(seg.responses[k], ds.responses[0][:, :, 10 * k:10 * (k + 1)])
        np.testing.assert_array_equal(seg.states[k], ds.states[0][:, 10 * k:10 * (k + 1)])
    assert seg.meta["segments"][3] == {"stimulus": "song", "start_bin": 30, "stop_bin": 40}
    assert seg.meta["source"] == "test" and seg.n_repeats_per_neuron[0].tolist() == [3, 2]


def test_segments_split_disjointly_and_reproducibly():
    seg = split_in_time(_long_dataset(), 10)
    tr, va, te = seg.split_indices(0)
    assert (len(tr), len(va), len(te)) == (7, 1, 2)
    assert np.array_equal(np.sort(np.concatenate([tr, va, te])), np.arange(10))
    assert all(np.array_equal(a, b) for a, b in zip(seg.split_indices(0), (tr, va, te)))
    fixed = split_in_time(_long_dataset(), 5, split_spec={"test": [4], "n_val": 1})
    assert fixed.split_indices(3)[2].tolist() == [4]


def test_bad_segment_counts_raise():
    with pytest.raises(ValueError, match="n_segments as an integer >= 2"):
        split_in_time(_long_dataset(), 1)
    with pytest.raises(ValueError, match="at least n_segments=200 bins"):
        split_in_time(_long_dataset(), 200)


def test_starling_song_split_in_time(shared_data):
    folder = shared_data / "meliza_starling" / "data" / "starling"
    if not folder.is_dir():
        pytest.skip(f"no starling unit at {folder}")
    song = load_dataset("folder", path=folder)
    assert song.n_stimuli == 1 and song.n_neurons == 2
    seg = split_in_time(song, 10)
    assert seg.n_stimuli == 10 and len(set(seg.n_bins.tolist())) == 1
    assert seg.n_bins[0] * 10 <= song.n_bins[0] < (seg.n_bins[0] + 1) * 10
    train, val, test = seg.split(seed=0)
    assert (train.n_stimuli, val.n_stimuli, test.n_stimuli) == (7, 1, 2)
    assert not set(train.stim_names) & set(test.stim_names)
