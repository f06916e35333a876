"""Mouse V1 responses to flashed natural scenes (Allen Brain Observatory), as a MovieDataset.

The files are the derived arrays described in ``allen_v1_scenes/README.md`` (two-photon
calcium imaging of 212 neurons in mouse V1, layer 2/3; 118 grey-scale natural scenes
down-sampled to 31 x 31 pixels, each flashed for 250 ms; one response per image and
neuron, averaged over 50 presentations, dF/F-like units, can be negative). Cite the Allen
Brain Observatory (de Vries et al. 2020, Nat Neurosci 23:138) when showing results.

Limits, stated in ``meta``: there is no time axis (each image is a one-frame movie and its
response one bin), and no per-trial responses, hence no noise ceiling: score a model with
the correlation over the test images per neuron (``cc_raw`` of ``training.evaluate``),
never ``cc_norm``.

Split: the source's 18 test images are the fixed test set (the last 18 stimuli); 20 of the
100 training images are drawn at random per seed for validation (early stopping,
regularisation), the other 80 train.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .movies import MovieDataset, images_as_movies

__all__ = ["load_allen_scenes", "is_available", "FOLDER", "FILE"]

FOLDER = "allen_v1_scenes"
FILE = "allen_v1_scenes.npz"
#: the arrays the file must hold
KEYS = ("train_images", "test_images", "train_responses", "test_responses")


def _file(root) -> Path:
    root = Path(root)
    return root / FILE if (root / FILE).is_file() else root / FOLDER / FILE


def is_available(root="data") -> bool:
    """Whether ``root/allen_v1_scenes/allen_v1_scenes.npz`` (or ``root/allen_v1_scenes.npz``) exists."""
    return _file(root).is_file()


def load_allen_scenes(root="data", n_val: int = 20) -> MovieDataset:
    """The Allen natural-scenes responses (module docstring) -> MovieDataset.

    Args:
        root: the folder holding ``allen_v1_scenes/`` (e.g. ``../shared/data``) or the folder
            of the file itself.
        n_val: validation images drawn per seed from the 100 training images.

    Returns:
        MovieDataset of 118 one-frame movies ``(1, 31, 31, 1)`` (luminance 0-1), responses
        ``(212, 1, 1)`` per image, ``dt_ms`` 250 (the flash), stim_types ``"train"`` / ``"test"``.
    """
    path = _file(root)
    if not path.is_file():
        raise FileNotFoundError(f"expected the Allen natural-scenes file {FOLDER}/{FILE} under {root}, found none")
    with np.load(path) as f:
        missing = [k for k in KEYS if k not in f.files]
        if missing:
            raise ValueError(f"expected arrays {KEYS} in {path}, missing {missing}")
        images = np.concatenate([f["train_images"], f["test_images"]]).astype(np.float32) / 255.0
        resp = np.concatenate([f["train_responses"], f["test_responses"]]).astype(np.float32)
        n_train = f["train_images"].shape[0]
    if images.ndim != 3 or resp.shape[0] != images.shape[0]:
        raise ValueError(f"expected images (B, H, W) and responses (B, N) with one row per image, got "
                         f"{images.shape} and {resp.shape}")
    b = images.shape[0]
    test = list(range(n_train, b))
    kinds = ["train"] * n_train + ["test"] * (b - n_train)
    names = [f"{k}_{i:03d}" for k, i in zip(kinds, list(range(n_train)) + list(range(b - n_train)))]
    meta = {"source": "Allen Brain Observatory, experiment container 511510667 (VISp, L2/3, Cux2-CreERT2), "
                      "natural scenes, derived arrays of psailamul/Allen_Brain_Observatory (Allen_data_170513)",
            "units": "mean dF/F-like response over the 250 ms flash, averaged over 50 presentations",
            "limits": "no time axis (one-frame movies); no per-trial responses, hence no noise ceiling: score "
                      "with the correlation over test images per neuron (cc_raw)",
            "citation": "de Vries et al. (2020) Nat Neurosci 23:138"}
    spec = {"test": test, "n_val": int(n_val), "val_from": "rest",
            "description": f"the source's {b - n_train} test images (fixed); {int(n_val)} of the {n_train} "
                           "training images drawn per seed for validation"}
    return MovieDataset(images_as_movies(images), [r[:, None, None] for r in resp], dt_ms=250.0, name="allen_v1_scenes",
                        stim_names=names, stim_types=kinds, split_spec=spec, meta=meta)
