"""Movies (and images) with neural responses: :class:`MovieDataset`.

A :class:`MovieDataset` is a :class:`~deepstrf_utils.datasets.base.ResponseDataset` whose
stimuli are movies: B movies, each ``(C, H, W, T_i)`` (C channels, 1 for luminance; H x W
pixels; T_i frames of ``dt_ms``), with the responses of N neurons, each ``(N, R_i, T_i)``
(R_i repeats, NaN = missing trial or padding) exactly as for spectrograms. An image is a
one-frame movie (:func:`images_as_movies`). Item ``i`` is ``(movie (C, H, W, T_i),
resp (N, R_i, T_i))`` as float32 tensors; ``collate_responses``, the training packer and
the prediction batches pad movies along time like spectrograms, into ``(B, C, H, W, T)``.

Everything else is inherited unchanged: per-neuron splits (``split``), ``subset`` /
``select`` (which return MovieDatasets), state signals, ground truth, summaries of the
responses and the versioned atomic HDF5 file (``to_hdf5`` / ``MovieDataset.from_hdf5``).

Shapes: B movies, C channels, H x W pixels, T frames, N neurons, R repeats.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from .base import ResponseDataset

__all__ = ["MovieDataset", "images_as_movies"]


def images_as_movies(images: Any, n_frames: int = 1) -> list[np.ndarray]:
    """Images as movies of ``n_frames`` identical frames: a list of B ``(C, H, W, n_frames)`` arrays.

    images: ``(B, H, W)`` (grey-scale, C = 1) or ``(B, C, H, W)`` numbers.
    """
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or min(arr.shape) == 0:
        raise ValueError(f"expected images of shape (B, H, W) or (B, C, H, W), got {np.shape(images)}")
    if int(n_frames) < 1:
        raise ValueError(f"expected n_frames >= 1, got {n_frames}")
    return [np.repeat(a[..., None], int(n_frames), axis=-1) for a in arr]


class MovieDataset(ResponseDataset):
    """Movies and neural responses (see the module docstring).

    Args:
        stimuli: list of B movies, each ``(C, H, W, T_i)``, finite floats (e.g. luminance in
            [0, 1]); every movie has the same ``(C, H, W)``.
        responses: list of B recordings, each ``(N, R_i, T_i)``, NaN = missing.
        dt_ms: frame (bin) duration in ms.
        pixel_deg: optional size of one pixel in degrees of visual angle (kept for figures
            and in-silico experiments; None when unknown).
        **kwargs: the other :class:`ResponseDataset` arguments (``neuron_ids``, ``neurons``,
            ``stim_names``, ``stim_types``, ``name``, ``split_spec``, ``ground_truth``,
            ``meta``, ``states``, ``state_names``), with the same meaning.

    Attributes beyond ResponseDataset's: ``frame_shape`` ``(C, H, W)``, ``pixel_deg``;
    ``cf_hz`` is None and ``n_bands`` does not exist (AttributeError).
    """

    #: the ``format`` attribute of its HDF5 files
    FILE_FORMAT = "deepstrf_utils.MovieDataset"

    def __init__(self, stimuli: Sequence[Any], responses: Sequence[Any], dt_ms: float,
                 pixel_deg: float | None = None, **kwargs):
        if pixel_deg is not None and not (np.isfinite(float(pixel_deg)) and float(pixel_deg) > 0):
            raise ValueError(f"expected pixel_deg > 0 (degrees of visual angle per pixel) or None, got {pixel_deg!r}")
        self.pixel_deg = None if pixel_deg is None else float(pixel_deg)
        if isinstance(stimuli, (np.ndarray, torch.Tensor)):
            raise ValueError(f"expected stimuli as a list of (C, H, W, T_i) movies, got an array of shape "
                             f"{tuple(stimuli.shape)} (list(array) splits it into movies)")
        super().__init__(stimuli, responses, dt_ms, cf_hz=kwargs.pop("cf_hz", None), **kwargs)

    # ------------------------------------------------------------------ stimulus format
    def _init_format(self, cf_hz) -> None:
        if cf_hz is not None:
            raise ValueError("expected no cf_hz for a MovieDataset (its stimuli are movies (C, H, W, T), "
                             "not spectrograms)")
        self.cf_hz = None
        self.frame_shape = None

    def _check_stimulus(self, s: np.ndarray, i: int) -> np.ndarray:
        if s.ndim != 4 or min(s.shape[:3]) == 0:
            raise ValueError(f"expected movie {i} of shape (C, H, W, T), got {s.shape}")
        if self.frame_shape is None:
            self.frame_shape = tuple(int(v) for v in s.shape[:3])
        elif s.shape[:3] != self.frame_shape:
            raise ValueError(f"expected movie {i} of shape (C, H, W, T) with (C, H, W)={self.frame_shape} "
                             f"like movie 0, got {s.shape}")
        return s

    def _format_kwargs(self) -> dict:
        return {"pixel_deg": self.pixel_deg}

    def _item_stimulus(self, s: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(s)

    # ------------------------------------------------------------------ access and summaries
    @property
    def n_bands(self) -> int:
        raise AttributeError("a MovieDataset has frames (C, H, W) (frame_shape), not frequency bands")

    @property
    def n_channels(self) -> int:
        """C, the channels of a frame (1 for luminance)."""
        return self.frame_shape[0]

    def __repr__(self) -> str:
        c, h, w = self.frame_shape
        return (f"MovieDataset(name={self.name!r}, neurons={self.n_neurons}, movies={self.n_stimuli}, "
                f"frame=(C={c}, H={h}, W={w}), frames={int(self.n_bins.sum())}, dt_ms={self.dt_ms:g})")

    def summary(self) -> pd.DataFrame:
        """One-row table: name, neurons, movies, repeats, frames, duration, frame shape, range."""
        reps = self.n_repeats
        rep = f"{reps.min()}" if reps.min() == reps.max() else f"{reps.min()}-{reps.max()}"
        lo = min(float(s.min()) for s in self.stimuli)
        hi = max(float(s.max()) for s in self.stimuli)
        c, h, w = self.frame_shape
        return pd.DataFrame([{
            "dataset": self.name, "neurons": self.n_neurons, "movies": self.n_stimuli, "repeats": rep,
            "frames": int(self.n_bins.sum()), "duration_s": round(self.duration_s, 3), "dt_ms": self.dt_ms,
            "channels": c, "height": h, "width": w, "pixel_deg": self.pixel_deg, "min": lo, "max": hi,
            "ground_truth": self.ground_truth is not None,
        }])
