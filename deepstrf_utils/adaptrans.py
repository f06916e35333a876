"""AdapTrans: the ON/OFF adaptation prefilter of Rançon, Masquelier & Cottereau (2024).

Per frequency band f, with kernel length K (bins), decays ``a_on, a_off`` in (0, 1) and a
shared weight ``w`` in (0, 1]::

    C(a)        = 1 / sum_{k=0}^{K-2} a^k
    y_on[t]     = x[t] - w * C(a_on) * sum_{k=1}^{K-1} a_on^(k-1) * x[t-k]
    y_off[t]    = C(a_off) * sum_{k=1}^{K-1} a_off^(k-1) * x[t-k] - w * x[t]

Both outputs settle at ``(1 - w) * x`` for a constant input; the OFF channel is not ``-ON``
unless ``w = 1`` and ``a_on = a_off``. The filter is strictly causal: the input is
extended to the left by replicating its first frame (K - 1 frames), so a constant input
gives the sustained level ``(1 - w) * x`` from the very first bin.

Shapes: B stimuli, F frequency bands, T time bins, K kernel taps.

Parameterisation (learnable AdapTrans): each of ``a_on``, ``a_off`` and ``w`` is the
logistic sigmoid of an unconstrained real parameter, and ``a^k`` is evaluated as
``exp(k * logsigmoid(theta))``. We prefer this over ``a = 1 / (1 + d^2)`` because the
latter has a zero gradient at ``d = 0`` (``a = 1`` becomes a trap once a large step lands
there) and a sign degeneracy; the sigmoid is monotone, saturates smoothly under very
large gradient steps (its derivative is at most 1/4), and the log-space evaluation can
never produce NaN/inf (``logsigmoid`` is finite for every finite input, and ``k = 0``
gives exactly 1). ``w`` therefore lies in the open interval (0, 1): ``w = 1`` is reached
only asymptotically (use ``WillmoreHighPass`` or the functional form for exactly 1).

Implementations: a depthwise grouped ``conv1d`` ("conv") and a zero-padded causal FFT
convolution ("fft"); ``"auto"`` chooses between them from K and T (see
``_choose_implementation`` and ``benchmarks/bench_adaptrans.py``). A first-order
recursion is *not* used: the kernel is a truncated, renormalised exponential, which a
one-pole IIR filter does not reproduce exactly.
"""

from __future__ import annotations

import logging
import math
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F_

from .plain import to_plain
from .shapes import check_int, check_number, check_stimulus
from .spectral import causal_filter_fft, fast_fft_length, padded_rfft

logger = logging.getLogger(__name__)

__all__ = [
    "center_frequencies",
    "willmore_tau_ms",
    "default_kernel_size",
    "adaptrans_kernels",
    "adaptrans_filter",
    "AdapTrans",
    "WillmoreHighPass",
]

_SCALES = ("mel", "log", "greenwood")
_RECTIFY = (None, "relu")
_IMPLEMENTATIONS = ("auto", "conv", "fft")

# Greenwood (1990) human cochlear map: f = A (10^(a x) - k), x in [0, 1] from apex to base.
_GW_A, _GW_ALPHA, _GW_K = 165.4, 2.1, 0.88


# --------------------------------------------------------------------------------------
# Frequencies and time constants
# --------------------------------------------------------------------------------------
def center_frequencies(
    min_freq: float = 500.0, max_freq: float = 20000.0, n_bands: int = 34, scale: str = "mel"
) -> np.ndarray:
    """Band centre frequencies, low to high.

    Args:
        min_freq, max_freq: lowest and highest centre frequency in Hz (both included).
        n_bands: number of bands F (>= 1; a single band sits at ``min_freq``).
        scale: ``"mel"`` (uniform in ``2595 log10(1 + f / 700)``), ``"log"`` (geometric)
            or ``"greenwood"`` (uniform in cochlear position x of the human map
            ``f = 165.4 (10^(2.1 x) - 0.88)``).

    Returns:
        ``np.ndarray`` of shape (F,), float64, in Hz.
    """
    if scale not in _SCALES:
        raise ValueError(f"scale must be one of {_SCALES}, got {scale!r}")
    n_bands = check_int(n_bands, "n_bands", 1)
    min_freq = check_number(min_freq, "min_freq (Hz)", 0.0, low_open=True)
    max_freq = check_number(max_freq, "max_freq (Hz)", 0.0, low_open=True)
    ordered = min_freq < max_freq or (n_bands == 1 and min_freq == max_freq)
    if not (min_freq > 0 and ordered and np.isfinite(max_freq)):
        raise ValueError(
            f"expected 0 < min_freq < max_freq (Hz), got min_freq={min_freq}, max_freq={max_freq}"
        )
    lo, hi = float(min_freq), float(max_freq)
    if scale == "mel":
        to = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
        back = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    elif scale == "log":
        to, back = np.log, np.exp
    else:
        to = lambda f: np.log10(f / _GW_A + _GW_K) / _GW_ALPHA  # noqa: E731
        back = lambda x: _GW_A * (10.0 ** (_GW_ALPHA * x) - _GW_K)  # noqa: E731
    cf = back(np.linspace(to(lo), to(hi), n_bands))
    cf[0] = lo
    if n_bands > 1:
        cf[-1] = hi
    return cf


def willmore_tau_ms(cf_hz) -> np.ndarray:
    """Midbrain adaptation time constant of Willmore et al. (2016): ``500 - 105 log10(f)`` ms.

    216.6 ms at 500 Hz, 48.4 ms at 20 kHz.

    Args:
        cf_hz: centre frequencies in Hz, shape (F,) (or a scalar).

    Returns:
        ``np.ndarray`` (F,) of time constants in ms (float64).
    """
    f = np.asarray(cf_hz, dtype=np.float64)
    if np.any(~np.isfinite(f)) or np.any(f <= 0):
        raise ValueError(f"expected positive finite centre frequencies in Hz, got {cf_hz!r}")
    tau = 500.0 - 105.0 * np.log10(f)
    if np.any(tau <= 0):
        raise ValueError(
            "the Willmore time constant 500 - 105 log10(f) ms is <= 0 above ~57 kHz; "
            f"got centre frequencies up to {f.max():.0f} Hz (pass tau_ms explicitly)"
        )
    return tau


def default_kernel_size(tau_ms, dt_ms: float) -> int:
    """Kernel length K in bins covering about 3 time constants of the slowest band.

    ``K = ceil(3 * max(tau_ms) / dt_ms) + 1`` (131 taps for tau = 216.6 ms at 5 ms bins).
    """
    tau = np.asarray(tau_ms, dtype=np.float64)
    dt_ms = check_number(dt_ms, "dt_ms (the bin width in ms)", 0.0, low_open=True)
    # round before ceil so that float noise (e.g. 3 * 20.0 / 1.0 = 60.000000001) cannot add a tap
    return int(math.ceil(round(3.0 * float(tau.max()) / float(dt_ms), 9))) + 1


# --------------------------------------------------------------------------------------
# Functional forms
# --------------------------------------------------------------------------------------
def _as_band_tensor(v, name: str, like: Optional[torch.Tensor] = None) -> torch.Tensor:
    if not torch.is_tensor(v):
        dtype = like.dtype if like is not None else torch.get_default_dtype()
        device = like.device if like is not None else None
        v = torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype, device=device)
    if v.dim() == 0:
        v = v.reshape(1)
    if v.dim() != 1:
        raise ValueError(f"expected {name} of shape (F,), got {tuple(v.shape)}")
    return v


def _kernels_from_log(log_a_on: torch.Tensor, log_a_off: torch.Tensor, w: torch.Tensor,
                      kernel_size: int) -> torch.Tensor:
    """Kernels (2, F, K) from log decays (F,) and weights (F,); powers as exp(k log a)."""
    K = int(kernel_size)
    k = torch.arange(K - 1, dtype=log_a_on.dtype, device=log_a_on.device)
    tails = []
    for log_a in (log_a_on, log_a_off):
        p = torch.exp(log_a.unsqueeze(-1) * k)  # (F, K-1): a^0 .. a^(K-2)
        tails.append(p / p.sum(dim=-1, keepdim=True))  # C(a) a^(k-1), sums to 1
    one = torch.ones_like(w).unsqueeze(-1)
    w_ = w.unsqueeze(-1)
    on = torch.cat([one, -w_ * tails[0]], dim=-1)
    off = torch.cat([-w_, tails[1]], dim=-1)
    return torch.stack([on, off], dim=0)


def adaptrans_kernels(a_on, a_off, w, kernel_size: int) -> torch.Tensor:
    """ON and OFF kernels of AdapTrans.

    Args:
        a_on, a_off: decays in (0, 1], tensors (F,) (arrays and scalars are accepted).
        w: weights of the present bin in [0, 1], (F,) or scalar (broadcast to F).
        kernel_size: K >= 2 taps (the present bin and K - 1 past bins).

    Returns:
        Tensor (2, F, K); ``[0]`` ON, ``[1]`` OFF; ``[:, :, k]`` is the weight of ``x[t-k]``.
        ON: ``[1, -w C a^0, ..., -w C a^(K-2)]``; OFF: ``[-w, C a^0, ..., C a^(K-2)]``
        with ``C = 1 / sum_{k=0}^{K-2} a^k``. Differentiable in ``a_on``, ``a_off``, ``w``.
    """
    K = int(kernel_size)
    if K < 2:
        raise ValueError(f"kernel_size must be >= 2 (present bin + at least one past bin), got {kernel_size}")
    like = next((v for v in (a_on, a_off, w) if torch.is_tensor(v)), None)
    a_on = _as_band_tensor(a_on, "a_on", like)
    a_off = _as_band_tensor(a_off, "a_off", a_on)
    w = _as_band_tensor(w, "w", a_on)
    n = max(a_on.shape[0], a_off.shape[0], w.shape[0])
    for name, v in (("a_on", a_on), ("a_off", a_off), ("w", w)):
        if v.shape[0] not in (1, n):
            raise ValueError(f"expected {name} of shape (F,) with F={n} (or a scalar), got {tuple(v.shape)}")
    a_on, a_off, w = a_on.expand(n), a_off.expand(n), w.expand(n)
    with torch.no_grad():
        for name, a in (("a_on", a_on), ("a_off", a_off)):
            if bool(((a <= 0) | (a > 1) | ~torch.isfinite(a)).any()):
                raise ValueError(f"expected {name} in (0, 1], got values {a.detach().cpu().numpy()}")
    return _kernels_from_log(torch.log(a_on), torch.log(a_off), w, K)


def _choose_implementation(kernel_size: int, n_bins: int, device: torch.device) -> str:
    """Pick "conv" or "fft" from K and T.

    Rule from ``benchmarks/bench_adaptrans.py`` (CPU, 2 threads, B = 20, F = 34, forward +
    backward; provisional, measured on a loaded machine): the depthwise convolution costs
    O(T K) per band and PyTorch's CPU depthwise conv1d is slow (K = 131, T = 999: ~90 ms
    vs ~16 ms for the FFT; K = 1301, T = 5000: ~5 s vs ~0.17 s), while the FFT costs
    O((T + K) log(T + K)) whatever K. The direct convolution only wins for very short
    kernels (K <= 8-12 taps), so it is used up to K = 12. GPUs have not been measured
    yet; the same rule is used there (the FFT is also O(T log T) on GPU).
    """
    return "conv" if kernel_size <= 12 else "fft"


def _apply_kernels(x: torch.Tensor, kernels: torch.Tensor, implementation: str,
                   kernel_hat: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Causal filtering of x (B, F, T) with kernels (C, F, K), replicate left padding.

    Replicate padding is implemented exactly as ``h * (x - x[0]) + sum(h) x[0]`` with zero
    padding, so a constant input gives exactly ``sum(h) x``.

    Returns (B, C, F, T).
    """
    B, Fb, T = x.shape
    C, _, K = kernels.shape
    x0 = x[..., :1]  # (B, F, 1)
    xc = x - x0
    gain = kernels.sum(dim=-1)  # (C, F)
    if implementation == "conv":
        weight = kernels.permute(1, 0, 2).flip(-1).reshape(Fb * C, 1, K)  # out ch = f*C + c
        y = F_.conv1d(F_.pad(xc, (K - 1, 0)), weight, groups=Fb)  # (B, F*C, T)
        y = y.view(B, Fb, C, T).transpose(1, 2)
    elif implementation == "fft" and kernel_hat is None:
        y = causal_filter_fft(xc, kernels)  # (B, C, F, T)
    elif implementation == "fft":  # the cached transform of the kernels (C, F, n//2+1)
        n = fast_fft_length(T + K - 1)
        X = padded_rfft(xc, n)  # (B, F, n//2+1)
        y = torch.fft.irfft(X.unsqueeze(1) * kernel_hat, n=n)[..., :T]  # (B, C, F, T)
    else:  # pragma: no cover - validated by callers
        raise ValueError(f"implementation must be one of {_IMPLEMENTATIONS}, got {implementation!r}")
    return y + gain.unsqueeze(0).unsqueeze(-1) * x0.unsqueeze(1)


def _check_options(rectify, implementation) -> None:
    if rectify not in _RECTIFY:
        raise ValueError(f"rectify must be None or 'relu', got {rectify!r}")
    if implementation not in _IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {_IMPLEMENTATIONS}, got {implementation!r}")


def _filter_with_kernels(x: torch.Tensor, kernels: torch.Tensor, rectify, implementation: str,
                         kernel_hat=None) -> torch.Tensor:
    """x (B, 1, F, T), kernels (C, F, K) -> (B, C, F, T)."""
    K = kernels.shape[-1]
    impl = implementation
    if impl == "auto":
        impl = _choose_implementation(K, x.shape[-1], x.device)
    if kernels.dtype != x.dtype:
        kernels = kernels.to(dtype=x.dtype)
        kernel_hat = None
    y = _apply_kernels(x[:, 0], kernels, impl, kernel_hat if impl == "fft" else None)
    if rectify == "relu":
        y = torch.relu(y)
    return y


def adaptrans_filter(x: torch.Tensor, a_on, a_off, w, kernel_size: int, rectify: Optional[str] = None,
                     implementation: str = "auto") -> torch.Tensor:
    """Apply AdapTrans with given parameters (functional form, differentiable).

    Args:
        x: stimulus (B, 1, F, T).
        a_on, a_off: decays in (0, 1], (F,); w: weights in [0, 1], (F,) or scalar.
        kernel_size: K taps.
        rectify: None (signed outputs, paper Figure 1) or ``"relu"``.
        implementation: ``"auto"``, ``"conv"`` (depthwise conv1d) or ``"fft"``.

    Returns:
        (B, 2, F, T): channel 0 ON, channel 1 OFF. Causal, first frame replicated to the left.
    """
    _check_options(rectify, implementation)
    check_stimulus(x, None)
    kern = adaptrans_kernels(a_on, a_off, w, kernel_size)
    if kern.shape[1] != x.shape[2]:
        if kern.shape[1] == 1:
            kern = kern.expand(2, x.shape[2], kern.shape[-1])
        else:
            raise ValueError(
                f"expected a stimulus of shape (B, 1, F, T) with F={kern.shape[1]}, got {tuple(x.shape)}"
            )
    return _filter_with_kernels(x, kern.to(device=x.device), rectify, implementation)


# --------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------
def _init_bands(n_bands, dt_ms, min_freq, max_freq, scale, cf_hz, tau_ms, kernel_size):
    """Shared constructor logic: returns cf_hz (F,), tau_ms (F,), K."""
    n_bands = check_int(n_bands, "n_bands", 1)
    dt_ms = check_number(dt_ms, "dt_ms (the bin width in ms)", 0.0, low_open=True)
    kernel_size = check_int(kernel_size, "kernel_size (taps: the present bin and at least one past bin)", 2,
                            none_ok=True)
    if cf_hz is None:
        cf = center_frequencies(min_freq, max_freq, n_bands, scale)
    else:
        cf = np.asarray(cf_hz, dtype=np.float64).reshape(-1)
        if cf.shape != (n_bands,):
            raise ValueError(f"expected cf_hz of shape (F,) with F={n_bands}, got {cf.shape}")
        if np.any(~np.isfinite(cf)) or np.any(cf <= 0):
            raise ValueError("expected cf_hz to contain positive finite frequencies in Hz")
    if tau_ms is None:
        tau = willmore_tau_ms(cf)
    else:
        tau = np.asarray(tau_ms, dtype=np.float64)
        if tau.ndim == 0:
            tau = np.full(n_bands, float(tau))
        if tau.shape != (n_bands,):
            raise ValueError(f"expected tau_ms to be a scalar or of shape (F,) with F={n_bands}, got {tau.shape}")
        if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
            raise ValueError("expected tau_ms > 0 (finite, in ms)")
    K = default_kernel_size(tau, dt_ms) if kernel_size is None else kernel_size
    return cf, tau, K


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _has_storage(t: torch.Tensor) -> bool:
    """False for a tensor without storage of its own (a ``torch.func`` / vmap wrapper)."""
    try:
        t.untyped_storage()
    except (NotImplementedError, RuntimeError):
        return False
    return True


class AdapTrans(nn.Module):
    """AdapTrans ON/OFF adaptation prefilter (Rançon et al. 2024), 3 parameters per band.

    Args:
        n_bands: F.
        dt_ms: bin width in ms.
        min_freq, max_freq, scale: band centre frequencies (``center_frequencies``), used
            unless ``cf_hz`` (F,) is given.
        tau_ms: initial time constants in ms, scalar or (F,); default Willmore et al. (2016)
            ``500 - 105 log10(cf)``. Initial ``a_on = a_off = exp(-dt_ms / tau_ms)``.
        w0: initial weight of the present bin (0 < w0 < 1), default 0.75.
        kernel_size: K taps; default ``ceil(3 * max(tau_ms) / dt_ms) + 1``.
        learnable: if False, ``a_on``, ``a_off``, ``w`` are buffers (no trainable parameter).
        rectify: None (signed outputs, paper Figure 1; the default) or ``"relu"`` on both
            channels (later upstream code).
        implementation: ``"auto"`` | ``"conv"`` | ``"fft"`` (identical results up to float
            rounding; "auto" picks the faster one from K and T).

    Parameters (raw, unconstrained, each (F,)): ``logit_a_on``, ``logit_a_off``,
    ``logit_w``; ``a = sigmoid(logit_a)``, ``w = sigmoid(logit_w)``.

    Forward: (B, 1, F, T) -> (B, 2, F, T), channel 0 ON, channel 1 OFF, strictly causal.

    ``config``: every effective constructor value (the band centres and initial time
    constants as resolved, the kernel length, ...), so that ``AdapTrans(**config)`` rebuilds
    the same module even if a default changes later.
    """

    out_channels = 2

    def __init__(self, n_bands: int, dt_ms: float = 5.0, min_freq: float = 500.0,
                 max_freq: float = 20000.0, scale: str = "mel", cf_hz=None, tau_ms=None,
                 w0: float = 0.75, kernel_size: Optional[int] = None, learnable: bool = True,
                 rectify: Optional[str] = None, implementation: str = "auto"):
        super().__init__()
        _check_options(rectify, implementation)
        w0 = check_number(w0, "w0 (the initial weight w = sigmoid(.) of the present bin)", 0.0, 1.0, True, True)
        if not isinstance(learnable, bool):
            raise TypeError(f"expected learnable to be True or False, got {learnable!r}")
        cf, tau, K = _init_bands(n_bands, dt_ms, min_freq, max_freq, scale, cf_hz, tau_ms, kernel_size)
        self.n_bands = int(n_bands)
        self.dt_ms = float(dt_ms)
        self.cf_hz = cf
        self.kernel_size = K
        self.learnable = bool(learnable)
        self.rectify = rectify
        self.implementation = implementation
        self.config = to_plain(dict(n_bands=self.n_bands, dt_ms=self.dt_ms, cf_hz=cf, tau_ms=tau, w0=float(w0),
                                    kernel_size=K, learnable=self.learnable, rectify=rectify,
                                    implementation=implementation))
        a0 = np.exp(-self.dt_ms / tau)
        if np.any(a0 >= 1.0):
            raise ValueError("tau_ms / dt_ms is too large: exp(-dt/tau) rounds to 1")
        raw = {
            "logit_a_on": _logit(a0),
            "logit_a_off": _logit(a0),
            "logit_w": np.full(self.n_bands, _logit(np.float64(w0))),
        }
        dtype = torch.get_default_dtype()
        for name, v in raw.items():
            t = torch.as_tensor(v, dtype=dtype)
            if self.learnable:
                self.register_parameter(name, nn.Parameter(t))
            else:
                self.register_buffer(name, t)
        self._cache = None

    # ---- per-band accessors -----------------------------------------------------------
    @property
    def a_on(self) -> torch.Tensor:
        """ON decay per band, (F,), in (0, 1)."""
        return torch.sigmoid(self.logit_a_on)

    @property
    def a_off(self) -> torch.Tensor:
        """OFF decay per band, (F,), in (0, 1)."""
        return torch.sigmoid(self.logit_a_off)

    @property
    def w(self) -> torch.Tensor:
        """Weight of the present bin per band, (F,), in (0, 1)."""
        return torch.sigmoid(self.logit_w)

    @property
    def tau_on_ms(self) -> torch.Tensor:
        """ON time constant ``-dt / ln(a_on)`` in ms, (F,)."""
        return self.dt_ms / F_.softplus(-self.logit_a_on)

    @property
    def tau_off_ms(self) -> torch.Tensor:
        """OFF time constant ``-dt / ln(a_off)`` in ms, (F,)."""
        return self.dt_ms / F_.softplus(-self.logit_a_off)

    def _raw(self):
        return (self.logit_a_on, self.logit_a_off, self.logit_w)

    def _build_kernels(self) -> torch.Tensor:
        return _kernels_from_log(F_.logsigmoid(self.logit_a_on), F_.logsigmoid(self.logit_a_off),
                                 self.w, self.kernel_size)

    def kernels(self) -> torch.Tensor:
        """ON/OFF kernels (2, F, K); ``[:, :, k]`` is the weight of ``x[t-k]``. Differentiable."""
        return self._build_kernels()

    def _needs_grad(self) -> bool:
        # vmapped parameters (torch.func, e.g. training.fit_single_units) report
        # requires_grad=False and have no storage: always rebuild, never cache them
        if not all(_has_storage(p) for p in self._raw()):
            return True
        return torch.is_grad_enabled() and any(p.requires_grad for p in self._raw())

    def clear_cache(self) -> None:
        """Forget the cached kernels (needed only after editing parameters through ``.data``)."""
        self._cache = None

    def _cached_kernels(self, x: torch.Tensor, impl: str):
        """Kernels (2, F, K) and their FFT, reused while nothing they depend on changed.

        Used only when no gradient is needed (evaluation). The cache keeps the raw
        parameter tensors themselves (identity), their storage pointers and their in-place
        version counters, so optimiser steps, in-place edits under ``torch.no_grad()``,
        ``load_state_dict``, replacing a parameter and ``.to()`` all invalidate it. Edits
        through ``param.data`` bypass PyTorch's version counter: call ``clear_cache()``.
        """
        T = x.shape[-1]
        n = fast_fft_length(T + self.kernel_size - 1) if impl == "fft" else None
        raw = self._raw()
        state = tuple((p.data_ptr(), p._version) for p in raw) + (x.dtype, x.device, impl, n)
        c = self._cache
        if c is None or c[2] != state or any(a is not b for a, b in zip(c[0], raw)):
            kern = self._build_kernels().to(dtype=x.dtype)
            hat = torch.fft.rfft(kern, n=n) if impl == "fft" else None
            self._cache = c = (raw, (kern, hat), state)
        return c[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ON/OFF filtering: x (B, 1, F, T) -> (B, 2, F, T) (channel 0 ON, 1 OFF)."""
        check_stimulus(x, self.n_bands)
        impl = self.implementation
        if impl == "auto":
            impl = _choose_implementation(self.kernel_size, x.shape[-1], x.device)
        if self._needs_grad():
            kern, hat = self._build_kernels(), None
        else:
            with torch.no_grad():
                kern, hat = self._cached_kernels(x, impl)
        return _filter_with_kernels(x, kern, self.rectify, impl, hat)

    def _apply(self, fn, *args, **kwargs):
        self._cache = None
        return super()._apply(fn, *args, **kwargs)

    def extra_repr(self) -> str:
        cf = self.cf_hz
        return (f"n_bands={self.n_bands}, dt_ms={self.dt_ms:g}, kernel_size={self.kernel_size}, "
                f"cf_hz=[{cf[0]:.0f}..{cf[-1]:.0f}], learnable={self.learnable}, "
                f"rectify={self.rectify!r}, implementation={self.implementation!r}")


class WillmoreHighPass(nn.Module):
    """Willmore et al. (2016) midbrain adaptation baseline: fixed high-pass, no parameters.

    The AdapTrans ON channel with ``w = 1`` and fixed Willmore time constants,
    half-wave rectified: ``y[t] = relu(x[t] - C(a) sum_{k=1}^{K-1} a^(k-1) x[t-k])``.

    Args: as ``AdapTrans`` without ``w0``, ``learnable`` and ``rectify``.

    Forward: (B, 1, F, T) -> (B, 1, F, T), >= 0, causal. ``config``: every effective
    constructor value, as for :class:`AdapTrans`.
    """

    out_channels = 1

    def __init__(self, n_bands: int, dt_ms: float = 5.0, min_freq: float = 500.0,
                 max_freq: float = 20000.0, scale: str = "mel", cf_hz=None, tau_ms=None,
                 kernel_size: Optional[int] = None, implementation: str = "auto"):
        super().__init__()
        _check_options(None, implementation)
        cf, tau, K = _init_bands(n_bands, dt_ms, min_freq, max_freq, scale, cf_hz, tau_ms, kernel_size)
        self.n_bands = int(n_bands)
        self.dt_ms = float(dt_ms)
        self.cf_hz = cf
        self.tau_ms = tau
        self.kernel_size = K
        self.implementation = implementation
        self.config = to_plain(dict(n_bands=self.n_bands, dt_ms=self.dt_ms, cf_hz=cf, tau_ms=tau, kernel_size=K,
                                    implementation=implementation))
        a = torch.as_tensor(np.exp(-self.dt_ms / tau), dtype=torch.float64)
        kern = adaptrans_kernels(a, a, torch.ones_like(a), K)[:1]  # (1, F, K)
        self.register_buffer("kernel", kern.to(torch.get_default_dtype()), persistent=False)

    def kernels(self) -> torch.Tensor:
        """The fixed kernel (1, F, K); ``[:, :, k]`` is the weight of ``x[t-k]``."""
        return self.kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, F, T) -> (B, 1, F, T), half-wave rectified ON response."""
        check_stimulus(x, self.n_bands)
        return _filter_with_kernels(x, self.kernel, "relu", self.implementation)

    def extra_repr(self) -> str:
        cf = self.cf_hz
        return (f"n_bands={self.n_bands}, dt_ms={self.dt_ms:g}, kernel_size={self.kernel_size}, "
                f"cf_hz=[{cf[0]:.0f}..{cf[-1]:.0f}], tau_ms=[{self.tau_ms.max():.1f}..{self.tau_ms.min():.1f}]")
