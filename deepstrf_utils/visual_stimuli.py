"""Synthetic visual stimuli: luminance movies ``(H, W, T)`` in [0, 1] around a mean grey of 0.5.

Ground floor (numpy only). The synthetic visual population (:mod:`.datasets.synthetic_visual`)
is driven by these movies, and the in-silico experiments on fitted models
(:mod:`.interpret.vision`) build their discs, annuli, flashes and gratings here.

Coordinates: pixel ``[y, x]`` (row, column) has its centre at ``(x, y)`` in pixel units; a
position is always given as ``(x, y)``. Directions are in degrees, 0 = motion towards +x,
90 = towards +y (down the rows). Time: T frames of ``dt_ms``.

* :func:`white_noise` -- binary or Gaussian noise per pixel (or per block of pixels) and frame;
* :func:`drifting_grating` -- a sinusoidal grating drifting in one direction;
* :func:`flash_sequence` -- full-field luminance steps (ON and OFF flashes);
* :func:`pink_noise_image`, :func:`natural_like` -- 1/f images and a window drifting over
  one (slow drift and occasional jumps, like fixational eye movements and saccades);
* :func:`disc` -- a disc or an annulus (anti-aliased edge) shown from ``onset`` to ``offset``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["MEAN_LUMINANCE", "white_noise", "drifting_grating", "flash_sequence", "pink_noise_image",
           "natural_like", "disc", "coverage"]

#: the grey level every stimulus starts from and returns to
MEAN_LUMINANCE = 0.5


def _shape(shape) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"expected a frame shape (H, W), got {shape!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"expected a frame shape (H, W) with H, W >= 1, got {shape!r}")
    return h, w


def _frames(n_frames) -> int:
    if int(n_frames) < 1:
        raise ValueError(f"expected n_frames >= 1, got {n_frames}")
    return int(n_frames)


def white_noise(rng: np.random.Generator, shape, n_frames: int, contrast: float = 1.0, block: int = 1,
                binary: bool = True) -> np.ndarray:
    """White noise movie ``(H, W, T)``: each block of ``block x block`` pixels and each frame
    independently ``0.5 +- contrast / 2`` (binary) or ``0.5 + contrast / 4 * N(0, 1)`` clipped to [0, 1]."""
    h, w = _shape(shape)
    t = _frames(n_frames)
    b = int(block)
    if b < 1:
        raise ValueError(f"expected block >= 1 pixel, got {block}")
    hb, wb = -(-h // b), -(-w // b)
    if binary:
        v = rng.choice([-0.5, 0.5], size=(hb, wb, t))
    else:
        v = rng.standard_normal((hb, wb, t)) / 4.0
    v = np.repeat(np.repeat(v, b, axis=0), b, axis=1)[:h, :w]
    return np.clip(MEAN_LUMINANCE + float(contrast) * v, 0.0, 1.0).astype(np.float32)


def drifting_grating(shape, n_frames: int, dt_ms: float, direction_deg: float, sf_cyc_per_px: float = 0.125,
                     tf_hz: float = 2.0, contrast: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """Sinusoidal grating ``(H, W, T)`` drifting in ``direction_deg`` at ``tf_hz`` (Michelson
    contrast ``contrast``, spatial frequency ``sf_cyc_per_px`` cycles per pixel)."""
    h, w = _shape(shape)
    t = np.arange(_frames(n_frames)) * float(dt_ms) / 1000.0
    th = np.deg2rad(float(direction_deg))
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    along = x * np.cos(th) + y * np.sin(th)  # position along the motion direction
    arg = 2 * np.pi * (float(sf_cyc_per_px) * along[..., None] - float(tf_hz) * t[None, None, :]) + float(phase)
    return (MEAN_LUMINANCE * (1.0 + float(contrast) * np.cos(arg))).astype(np.float32)


def flash_sequence(shape, segments: Sequence[tuple[float, float]], dt_ms: float) -> np.ndarray:
    """Full-field luminance steps ``(H, W, T)``: ``segments`` = ``[(level, duration_ms), ...]``,
    levels in [0, 1] (0.5 = grey; above = ON flash, below = OFF flash)."""
    h, w = _shape(shape)
    levels = []
    for level, dur in segments:
        if not 0.0 <= float(level) <= 1.0 or float(dur) <= 0:
            raise ValueError(f"expected segments (level in [0, 1], duration_ms > 0), got {(level, dur)}")
        levels += [float(level)] * max(1, int(round(float(dur) / float(dt_ms))))
    lv = np.asarray(levels, dtype=np.float32)
    return np.broadcast_to(lv, (h, w, lv.size)).copy()


def pink_noise_image(rng: np.random.Generator, size: int, exponent: float = 2.0) -> np.ndarray:
    """A ``(size, size)`` image with power spectrum ``1 / f^exponent`` (natural images: ~2),
    zero mean, unit standard deviation."""
    n = int(size)
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    f = np.sqrt(fx ** 2 + fy ** 2)
    f[0, 0] = 1.0
    spec = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (float(exponent) / 2.0)
    spec[0, 0] = 0.0
    img = np.fft.irfft2(spec, s=(n, n))
    return (img - img.mean()) / (img.std() + 1e-12)


def natural_like(rng: np.random.Generator, shape, n_frames: int, contrast: float = 0.35,
                 drift_px: float = 0.3, jump_every: int = 40, exponent: float = 2.0) -> np.ndarray:
    """A natural-like movie ``(H, W, T)``: a window sliding over a larger 1/f image.

    The window drifts by a random walk of ``drift_px`` pixels per frame (fixational drift)
    and jumps to a new random place about every ``jump_every`` frames (saccades); luminance
    ``0.5 + contrast / 2 * image`` clipped to [0, 1] (image of unit standard deviation).
    """
    h, w = _shape(shape)
    t = _frames(n_frames)
    canvas = pink_noise_image(rng, 4 * max(h, w), exponent)
    span = canvas.shape[0] - max(h, w) - 2
    pos = rng.uniform(0, span, size=2)
    out = np.empty((h, w, t), dtype=np.float32)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    for k in range(t):
        if jump_every and rng.random() < 1.0 / float(jump_every):
            pos = rng.uniform(0, span, size=2)
        pos = np.clip(pos + rng.normal(0.0, float(drift_px), size=2), 0, span)
        out[..., k] = _bilinear(canvas, y + pos[1], x + pos[0])
    return np.clip(MEAN_LUMINANCE + float(contrast) / 2.0 * out, 0.0, 1.0).astype(np.float32)


def _bilinear(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    return ((1 - fy) * (1 - fx) * img[y0, x0] + (1 - fy) * fx * img[y0, x0 + 1]
            + fy * (1 - fx) * img[y0 + 1, x0] + fy * fx * img[y0 + 1, x0 + 1])


def coverage(shape, centre_xy, radius: float, inner_radius: float = 0.0, supersample: int = 8) -> np.ndarray:
    """Fraction of each pixel ``(H, W)`` inside the ring ``inner_radius <= r < radius`` around
    ``centre_xy`` (a disc for ``inner_radius = 0``), by ``supersample x supersample`` sub-pixels."""
    h, w = _shape(shape)
    s = int(supersample)
    off = (np.arange(s) + 0.5) / s - 0.5
    yy = np.arange(h)[:, None] + off[None, :]
    xx = np.arange(w)[:, None] + off[None, :]
    dy = (yy - float(centre_xy[1]))[:, None, :, None]
    dx = (xx - float(centre_xy[0]))[None, :, None, :]
    r2 = dy ** 2 + dx ** 2  # (H, W, s, s)
    inside = (r2 < float(radius) ** 2) & (r2 >= float(inner_radius) ** 2)
    return inside.mean(axis=(2, 3))


def disc(shape, centre_xy, radius: float, n_frames: int, onset: int, offset: int | None = None,
         contrast: float = 1.0, inner_radius: float = 0.0) -> np.ndarray:
    """A disc (or an annulus with ``inner_radius > 0``) of luminance ``0.5 * (1 + contrast)``
    (negative contrast: a dark disc) on grey, shown from frame ``onset`` to ``offset``
    (exclusive; None = to the end): ``(H, W, T)``, anti-aliased edge (:func:`coverage`)."""
    h, w = _shape(shape)
    t = _frames(n_frames)
    if not 0 <= int(onset) < t:
        raise ValueError(f"expected 0 <= onset < n_frames={t}, got {onset}")
    stop = t if offset is None else int(offset)
    if not int(onset) < stop <= t:
        raise ValueError(f"expected onset < offset <= n_frames={t}, got onset={onset}, offset={offset}")
    mask = coverage((h, w), centre_xy, radius, inner_radius)
    out = np.full((h, w, t), MEAN_LUMINANCE, dtype=np.float32)
    out[..., int(onset):stop] += (MEAN_LUMINANCE * float(contrast) * mask)[..., None].astype(np.float32)
    return out
