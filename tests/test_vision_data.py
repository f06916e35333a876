"""Movie datasets: MovieDataset, collation and training batches of movies, HDF5 files, the
synthetic visual population, the Allen natural-scenes loader; visual stimuli."""
import numpy as np
import pytest
import torch

from deepstrf_utils import visual_stimuli as vs
from deepstrf_utils.datasets import MovieDataset, ResponseDataset, collate_responses, images_as_movies
from deepstrf_utils.datasets.synthetic_visual import VisualGroundTruth, load_synthetic_visual


def make_movies(lengths=(10, 12, 8, 9), frame=(1, 4, 5), n_neurons=3, repeats=(2, 2, 1, 2), seed=0):
    rng = np.random.default_rng(seed)
    stims = [rng.random((*frame, t)).astype(np.float32) for t in lengths]
    resps = [rng.poisson(2.0, (n_neurons, r, t)).astype(np.float32) for r, t in zip(repeats, lengths)]
    return MovieDataset(stims, resps, dt_ms=25.0, pixel_deg=2.0, name="movies",
                        split_spec={"test": [3], "n_val": 1})


@pytest.fixture(scope="module")
def tiny_visual():
    torch.set_num_threads(1)
    return load_synthetic_visual(n_neurons=6, frame_hw=(8, 8), n_repeats=3, n_movies=5, segment_frames=24, seed=1)


def test_movie_items_collate_and_views_keep_the_type():
    ds = make_movies()
    stim, resp = ds[1]
    assert stim.shape == (1, 4, 5, 12) and resp.shape == (3, 2, 12) and ds.frame_shape == (1, 4, 5)
    x, r, mask = collate_responses([ds[i] for i in range(4)])
    assert x.shape == (4, 1, 4, 5, 12) and r.shape == (4, 3, 2, 12) and mask.sum(1).tolist() == [10, 12, 8, 9]
    assert (x[2, ..., 8:] == 0).all() and torch.isnan(r[2, :, 1]).all()
    for part in (*ds.split(0), ds.subset([0, 2]), ds.select([2, 0]), ds.replace(name="other")):
        assert isinstance(part, MovieDataset) and part.frame_shape == (1, 4, 5) and part.pixel_deg == 2.0
    train, val, test = ds.split(0)
    assert test.n_stimuli == 1 and val.n_stimuli == 1 and train.n_stimuli == 2
    assert ds.summary()["movies"].item() == 4 and ds.n_bins.tolist() == [10, 12, 8, 9]
    with pytest.raises(AttributeError, match="frame_shape"):
        ds.n_bands


def test_movie_hdf5_round_trip_and_the_wrong_class(tmp_path):
    ds = make_movies()
    path = ds.to_hdf5(tmp_path / "m.h5")
    back = MovieDataset.from_hdf5(path)
    assert back.frame_shape == ds.frame_shape and back.pixel_deg == 2.0 and back.split_spec == ds.split_spec
    for a, b in zip(back.stimuli, ds.stimuli):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="holds a MovieDataset.*MovieDataset.from_hdf5"):
        ResponseDataset.from_hdf5(path)
    spectro = ResponseDataset([np.ones((2, 5))], [np.ones((1, 1, 5))], dt_ms=5.0, cf_hz=[500, 1000])
    with pytest.raises(ValueError, match="holds a ResponseDataset"):
        MovieDataset.from_hdf5(spectro.to_hdf5(tmp_path / "s.h5"))


def test_movie_dataset_bad_inputs():
    stims = [np.zeros((1, 4, 5, 6)), np.zeros((1, 4, 5, 7))]
    resps = [np.zeros((2, 1, 6)), np.zeros((2, 1, 7))]
    MovieDataset(stims, resps, dt_ms=10.0)
    with pytest.raises(ValueError, match=r"movie 1 of shape \(C, H, W, T\) with \(C, H, W\)=\(1, 4, 5\)"):
        MovieDataset([stims[0], np.zeros((1, 5, 4, 7))], resps, dt_ms=10.0)
    with pytest.raises(ValueError, match=r"movie 0 of shape \(C, H, W, T\)"):
        MovieDataset([np.zeros((4, 5, 6)), stims[1]], resps, dt_ms=10.0)
    with pytest.raises(ValueError, match="no cf_hz"):
        MovieDataset(stims, resps, dt_ms=10.0, cf_hz=[1.0])
    with pytest.raises(ValueError, match="T=7 bins"):
        MovieDataset(stims, [resps[0], np.zeros((2, 1, 6))], dt_ms=10.0)
    with pytest.raises(ValueError, match="list of \\(C, H, W, T_i\\) movies"):
        MovieDataset(np.zeros((2, 1, 4, 5, 6)), resps, dt_ms=10.0)
    with pytest.raises(ValueError, match="pixel_deg"):
        MovieDataset(stims, resps, dt_ms=10.0, pixel_deg=-1)
    with pytest.raises(ValueError, match=r"\(C, H, W\)=\(1, 4, 5\) like item 0"):
        collate_responses([(torch.zeros(1, 4, 5, 6), torch.zeros(2, 1, 6)), (torch.zeros(1, 5, 5, 6), torch.zeros(2, 1, 6))])
    with pytest.raises(ValueError, match=r"\(1, F, T\) \(or a movie"):
        collate_responses([(torch.zeros(4, 5), torch.zeros(2, 1, 5))])


def test_images_as_movies():
    imgs = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    movies = images_as_movies(imgs, n_frames=2)
    assert len(movies) == 2 and movies[0].shape == (1, 3, 4, 2) and movies[1][0, 2, 3, 1] == 23
    with pytest.raises(ValueError, match="\\(B, H, W\\) or \\(B, C, H, W\\)"):
        images_as_movies(np.zeros(5))


def test_fit_predict_and_evaluate_accept_movies(tiny_visual):
    """The auditory training path runs unchanged on a MovieDataset: fit (L-BFGS and AdamW),
    evaluate (cc_norm over repeats) and fit_sessions with behaviour signals."""
    from deepstrf_utils.models import RecurrentVisualNet, VisualLinearNonlinear
    from deepstrf_utils.training import evaluate, fit, fit_sessions, predict

    train, val, test = tiny_visual.split(0)
    torch.manual_seed(0)
    model = VisualLinearNonlinear(tiny_visual.frame_shape, tiny_visual.n_neurons, n_lags=4, dt_ms=25.0)
    res = fit(model, train, val, max_epochs=3, progress=False, optimizer="lbfgs")
    assert res.optimizer == "lbfgs" and len(res.val_loss) >= 1
    preds = predict(model, test)
    assert [p.shape for p in preds] == [(6, s.shape[-1]) for s in test.stimuli]
    scores = evaluate(model, test)
    assert list(scores.columns) == ["neuron", "cc_raw", "cc_norm", "cc_max"] and scores["cc_raw"].notna().all()
    rnn = RecurrentVisualNet(tiny_visual.frame_shape, tiny_visual.n_neurons, channels=(2,), spatial_kernels=(3,),
                             temporal_kernels=(2,), pool=2, n_embed=4, n_hidden=4, n_states=1, state_names=["running"])
    res = fit_sessions(rnn, train, val, max_epochs=2, progress=False)
    assert len(res.train_loss) == 2 and np.isfinite(res.train_loss).all()


def test_synthetic_visual_is_deterministic_and_its_truth_reproduces_the_rates(tiny_visual):
    again = load_synthetic_visual(n_neurons=6, frame_hw=(8, 8), n_repeats=3, n_movies=5, segment_frames=24, seed=1)
    for a, b in zip(again.responses, tiny_visual.responses):
        np.testing.assert_array_equal(a, b)
    gt = tiny_visual.ground_truth
    assert gt["rf"].shape == (6, 8, 8, 8) and gt["centre_xy"].shape == (6, 2)
    from deepstrf_utils.datasets.synthetic_visual import movie_segments

    for movie, desc in zip(tiny_visual.stimuli, gt["segments"]):  # every movie: one segment of each kind
        segs = movie_segments(desc)
        assert sorted(k[:7] for k, _, _ in segs) == ["flashes", "grating", "natural", "white_n"]
        assert [(a, b) for _, a, b in segs] == [(0, 24), (24, 48), (48, 72), (72, 96)] and movie.shape[-1] == 96
    assert tiny_visual.state_names == ["running"] and (np.concatenate(tiny_visual.states, 1) >= 0).all()
    truth = VisualGroundTruth.from_ground_truth(gt)
    for i in (0, 4):
        x = torch.from_numpy(tiny_visual.stimuli[i][None])
        s = torch.from_numpy(tiny_visual.states[i][None])
        np.testing.assert_allclose(truth(x, s)[0].numpy(), gt["rate"][i], rtol=1e-5, atol=1e-6)
    # a selection keeps the truth aligned with its neurons
    sub = tiny_visual.select([4, 1])
    np.testing.assert_array_equal(sub.ground_truth["centre_xy"], gt["centre_xy"][[4, 1]])
    x = torch.from_numpy(sub.stimuli[0][None])
    torch.testing.assert_close(VisualGroundTruth.from_ground_truth(sub.ground_truth)(x), truth(x)[:, [4, 1]])


def test_visual_stimuli():
    rng = np.random.default_rng(0)
    noise = vs.white_noise(rng, (4, 6), 50, block=2)
    assert noise.shape == (4, 6, 50) and set(np.unique(noise)) == {0.0, 1.0}
    assert (noise[0, 0] == noise[1, 1]).all()  # 2 x 2 blocks
    g = vs.drifting_grating((8, 8), 40, 25.0, 90.0, sf_cyc_per_px=0.25, tf_hz=2.0)
    np.testing.assert_allclose(g[:, 0], g[:, 5], atol=1e-6)  # motion along y: constant along x
    np.testing.assert_allclose(g[0, 0, 0], g[4, 0, 0], atol=1e-6)  # one cycle = 4 pixels
    np.testing.assert_allclose(g[1, 0, 5], g[0, 0, 0], atol=1e-5)  # moving towards +y: 2 Hz x 125 ms = 1 pixel
    d = vs.disc((9, 9), (4, 4), 2.0, 10, onset=3)
    assert d[..., :3].max() == 0.5 and d[4, 4, 5] == 1.0 and d[0, 0, 5] == 0.5
    np.testing.assert_allclose(vs.coverage((40, 40), (20, 20), 10.0).sum(), np.pi * 100, rtol=1e-2)
    annulus = vs.coverage((40, 40), (20, 20), 10.0, inner_radius=5.0).sum()
    np.testing.assert_allclose(annulus, np.pi * 75, rtol=2e-2)
    flashes = vs.flash_sequence((2, 2), [(0.5, 50), (1.0, 75)], 25.0)
    assert flashes[0, 0].tolist() == [0.5, 0.5, 1.0, 1.0, 1.0]
    img = vs.pink_noise_image(rng, 32)
    assert abs(img.mean()) < 1e-9 and abs(img.std() - 1) < 1e-9
    with pytest.raises(ValueError, match="frame shape"):
        vs.white_noise(rng, (0, 3), 4)
    with pytest.raises(ValueError, match="onset < offset"):
        vs.disc((4, 4), (1, 1), 1.0, 10, onset=5, offset=5)


def test_allen_scenes_loader(shared_data):
    from deepstrf_utils.datasets import load_visual_dataset

    if not (shared_data / "allen_v1_scenes").is_dir():
        pytest.skip("allen_v1_scenes not in the shared data folder")
    ds = load_visual_dataset("allen_v1_scenes", root=shared_data)
    assert ds.n_stimuli == 118 and ds.n_neurons == 212 and ds.frame_shape == (1, 31, 31)
    assert set(ds.n_bins.tolist()) == {1} and ds.stim_types.count("test") == 18
    train, val, test = ds.split(0)
    assert (test.n_stimuli, val.n_stimuli, train.n_stimuli) == (18, 20, 80)
    assert test.meta["stimulus_indices"] == list(range(100, 118))
    assert "no noise ceiling" in ds.meta["limits"]
    assert 0.0 <= min(s.min() for s in ds.stimuli) and max(s.max() for s in ds.stimuli) <= 1.0
    with pytest.raises(ValueError, match="unknown visual dataset"):
        load_visual_dataset("allen", root=shared_data)


def test_stimulus_format_check_compares_frames_and_kinds(tiny_visual):
    """fit / predict / evaluate refuse a visual model built for other frames, a visual model on
    spectrograms and a spectrogram model on movies, naming both sides and the override."""
    from deepstrf_utils.datasets.synthetic import generate_synthetic
    from deepstrf_utils.models import LinearNonlinear, VisualLinearNonlinear
    from deepstrf_utils.training import check_stimulus_format, fit

    c, h, w = tiny_visual.frame_shape
    model = VisualLinearNonlinear((c, h + 2, w), tiny_visual.n_neurons, n_lags=2, dt_ms=tiny_visual.dt_ms)
    with pytest.raises(ValueError, match=r"frame_shape=data.frame_shape.*check_stimulus_format=False"):
        check_stimulus_format(model, tiny_visual)
    with pytest.raises(ValueError, match=r"frames \(C, H, W\)"):
        fit(model, *tiny_visual.split(0)[:2], max_epochs=1)
    check_stimulus_format(VisualLinearNonlinear(tiny_visual.frame_shape, tiny_visual.n_neurons, dt_ms=tiny_visual.dt_ms),
                          tiny_visual)  # the right frames pass
    sound = generate_synthetic(n_neurons=2, n_clips=3, clip_s=0.5, n_repeats=2, dt_ms=10.0, n_bands=8, seed=0)
    with pytest.raises(ValueError, match="holds spectrograms"):
        check_stimulus_format(VisualLinearNonlinear(tiny_visual.frame_shape, 2, dt_ms=sound.dt_ms), sound)
    with pytest.raises(ValueError, match="holds movies"):
        check_stimulus_format(LinearNonlinear(sound.n_bands, tiny_visual.n_neurons, dt_ms=tiny_visual.dt_ms), tiny_visual)
