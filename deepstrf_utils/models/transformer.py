"""A causal Transformer core with a bounded context window (Rançon et al. 2025's attention model).

:class:`Transformer`: prefilter -> per frame, a frequency embedding of the prefiltered
spectrogram (frequency patches of ``patch`` bands, each mapped to ``embedding`` values by
one shared linear map: the token of bin t has ``d = embedding * F / patch`` values) ->
``n_layers`` pre-norm Transformer blocks whose self-attention over time is **causal and
banded**: the token of bin t attends to bins ``t - window + 1 .. t`` only -> a per-neuron
readout (a 1 x 1 dense layer and the 3-parameter :class:`~.layers.ParametricSigmoid`).

The window W (``window``, in bins) bounds the context, so the receptive field of the core
is ``n_layers * (W - 1) + 1`` bins (plus the prefilter's kernel), and the attention is
computed **blockwise** (:func:`banded_attention`): the sequence is cut into blocks of W
bins and each block attends to itself and the block before it, so time and memory grow
linearly with T (2 W scores per bin and head), never as an O(T^2) mask over the whole
sequence.

Relative positions: ``positions="rotary"`` (sinusoidal rotary embeddings of queries and
keys, Su et al. 2021: the scores depend on the lag t - s only; no parameters) or
``"learned"`` (one learned score bias per head and lag 0 .. W - 1, ``n_heads * W``
parameters, zero at start) or ``"none"``.

Shapes: B batch, C prefilter channels, F bands, T bins, N neurons, d token width,
H heads, W window.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..shapes import check_int
from .base import ResponseModel
from .layers import ParametricSigmoid
from .readouts import DenseSigmoidReadout

__all__ = ["Transformer", "banded_attention", "rotary", "POSITIONS"]

POSITIONS = ("rotary", "learned", "none")


def rotary(x: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotary position embedding of x ``(..., T, D)`` (D even) at positions 0 .. T - 1.

    Pairs of features ``(x[..., i], x[..., i + D/2])`` are rotated by the angle
    ``t * base ** (-2 i / D)`` (Su et al. 2021), so that the dot product of a rotated query at
    t with a rotated key at s depends on the lag ``t - s`` only.
    """
    t, d = x.shape[-2], x.shape[-1]
    half = d // 2
    freqs = base ** (-torch.arange(half, dtype=torch.float64, device=x.device) * 2.0 / d)
    angles = torch.arange(t, dtype=torch.float64, device=x.device)[:, None] * freqs[None, :]  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def _band(window: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Lags and allowed entries of one block of W queries against its 2 W keys (previous block,
    own block): lag ``(W + i) - j`` of query i and key j; allowed ``0 <= lag < W``."""
    i = torch.arange(window, device=device)[:, None]
    j = torch.arange(2 * window, device=device)[None, :]
    lag = window + i - j
    return lag, (lag >= 0) & (lag < window)


def banded_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int,
                     lag_bias: torch.Tensor | None = None, dropout: float = 0.0,
                     training: bool = False) -> torch.Tensor:
    """Causal attention within a window of W bins, computed blockwise (linear in T).

    ``out[b, h, t] = sum_s softmax_s(q[b, h, t] . k[b, h, s] / sqrt(D) + lag_bias[h, t - s]) v[b, h, s]``
    over ``t - W < s <= t`` (s >= 0). q, k, v: ``(B, H, T, D)``; lag_bias: ``(H, W)`` or None.
    The sequence is cut into ceil(T / W) blocks of W bins; the queries of a block read the
    keys of that block and the one before (enough, since every lag is below W), so the
    scores take ``2 W`` entries per query: ``(B, H, T / W, W, 2 W)``. Returns ``(B, H, T, D)``.
    """
    b, h, t, d = q.shape
    w = int(window)
    n_blocks = -(-t // w)
    tail = n_blocks * w - t
    qb = F.pad(q, (0, 0, 0, tail)).reshape(b, h, n_blocks, w, d)
    # keys / values with one empty block in front: block n reads padded positions n W .. n W + 2 W
    kb = F.pad(k, (0, 0, w, tail)).unfold(2, 2 * w, w)  # (B, H, n, D, 2W), a view
    vb = F.pad(v, (0, 0, w, tail)).unfold(2, 2 * w, w)
    scores = torch.einsum("bhnid,bhndj->bhnij", qb, kb) * (1.0 / math.sqrt(d))
    lag, allowed = _band(w, q.device)
    if lag_bias is not None:
        scores = scores + lag_bias[:, lag.clamp(0, w - 1)][None, :, None]  # (1, H, 1, W, 2W)
    first = torch.arange(2 * w, device=q.device) >= w  # block 0: its "previous block" is padding
    mask = allowed.expand(n_blocks, w, 2 * w).clone()
    mask[0] &= first[None, :]
    scores = scores.masked_fill(~mask, float("-inf"))
    attn = torch.softmax(scores, dim=-1)
    if dropout and training:
        attn = F.dropout(attn, dropout, training=True)
    out = torch.einsum("bhnij,bhndj->bhnid", attn, vb)
    return out.reshape(b, h, n_blocks * w, d)[:, :, :t]


class _Block(nn.Module):
    """One pre-norm Transformer block: ``x + attn(LN(x))``, then ``x + FF(LN(x))``; x ``(B, T, d)``."""

    def __init__(self, width, n_heads, feedforward, window, positions, dropout, rotary_base):
        super().__init__()
        self.width, self.n_heads, self.window = width, n_heads, window
        self.positions, self.dropout, self.rotary_base = positions, dropout, rotary_base
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.ff1 = nn.Linear(width, feedforward)
        self.ff2 = nn.Linear(feedforward, width)
        if positions == "learned":
            self.lag_bias = nn.Parameter(torch.zeros(n_heads, window))

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The attention branch on x ``(B, T, d)`` (already normalised) -> ``(B, T, d)``."""
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
        if self.positions == "rotary":
            q, k = rotary(q, self.rotary_base), rotary(k, self.rotary_base)
        out = banded_attention(q, k, v, self.window, getattr(self, "lag_bias", None), self.dropout, self.training)
        return self.proj(out.transpose(1, 2).reshape(b, t, self.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + F.dropout(self.attention(self.norm1(x)), self.dropout, self.training)
        ff = self.ff2(F.dropout(F.relu(self.ff1(self.norm2(x))), self.dropout, self.training))
        return x + F.dropout(ff, self.dropout, self.training)


class Transformer(DenseSigmoidReadout, ResponseModel):
    """Causal Transformer over time bins with a bounded attention window of ``window`` bins.

    Per bin: the prefiltered frame ``(C, F)`` is cut into ``F / patch`` frequency patches of
    ``patch`` bands, each embedded by the same ``Conv2d(C, embedding, (patch, 1), stride
    (patch, 1))``; the token ``(d,)``, ``d = embedding * F / patch``, goes through
    ``n_layers`` pre-norm blocks (LayerNorm -> multi-head banded causal self-attention over
    the last ``window`` bins, :func:`banded_attention` -> residual; LayerNorm -> Linear(d,
    ``feedforward``) -> ReLU -> Linear(d) -> residual; ``dropout`` on the attention weights and
    both branches) -> readout ``Conv1d(d, N, 1)`` -> :class:`ParametricSigmoid` (ConvNet2D's
    readout, :class:`~.readouts.DenseSigmoidReadout`).

    Receptive field of the core: ``n_layers * (window - 1) + 1`` bins; cost linear in T.
    ``positions``: ``"rotary"`` (sinusoidal relative positions, no parameters; ``rotary_base``
    sets the longest wavelength), ``"learned"`` (a score bias per head and lag) or ``"none"``.
    NAT4 PEG (18 bands, patch 6, embedding 16, 1 layer, no prefilter, N = 1): 28,436 parameters
    (upstream's: 28,437, whose output sigmoid has 4 parameters; ours 3).

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)`` (``lengths`` ignored: no batch statistics).
    """

    def __init__(
        self, n_bands, n_neurons=1, window=32, patch=None, embedding=48, n_heads=1, n_layers=1,
        feedforward=None, positions="rotary", dropout=0.0, rotary_base=10000.0,
        prefilter=None, prefilter_kwargs=None, dt_ms=5.0,
    ):
        super().__init__()
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        self.window = check_int(window, "window", 1)
        self.patch = self.n_bands if patch is None else check_int(patch, "patch", 1)
        if self.n_bands % self.patch:
            raise ValueError(f"expected patch to divide n_bands={self.n_bands} (frequency patches), got {self.patch}")
        self.embedding = check_int(embedding, "embedding", 1)
        self.n_heads = check_int(n_heads, "n_heads", 1)
        self.n_layers = check_int(n_layers, "n_layers", 1)
        self.n_hidden = self.embedding * (self.n_bands // self.patch)  # d, the token width
        if self.n_hidden % self.n_heads or (positions == "rotary" and (self.n_hidden // self.n_heads) % 2):
            raise ValueError(f"expected the token width d = embedding * n_bands / patch = {self.n_hidden} to be a "
                             f"multiple of n_heads={self.n_heads} (and of 2 n_heads with rotary positions)")
        self.feedforward = 4 * self.n_hidden if feedforward is None else check_int(feedforward, "feedforward", 1)
        if positions not in POSITIONS:
            raise ValueError(f"expected positions in {POSITIONS}, got {positions!r}")
        self.positions = positions
        self.dropout = float(dropout)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"expected 0 <= dropout < 1, got {dropout!r}")
        self.rotary_base = float(rotary_base)
        if not self.rotary_base > 1.0:
            raise ValueError(f"expected rotary_base > 1, got {rotary_base!r}")
        self.embed = nn.Conv2d(self.in_channels, self.embedding, (self.patch, 1), stride=(self.patch, 1))
        self.blocks = nn.ModuleList(
            _Block(self.n_hidden, self.n_heads, self.feedforward, self.window, positions, self.dropout,
                   self.rotary_base) for _ in range(self.n_layers)
        )
        self.readout = nn.Conv1d(self.n_hidden, self.n_neurons, 1)
        self.output_nonlinearity = ParametricSigmoid(self.n_neurons)
        self._set_config(
            prefilter, prefilter_kwargs, window=self.window, patch=self.patch, embedding=self.embedding,
            n_heads=self.n_heads, n_layers=self.n_layers, feedforward=self.feedforward, positions=positions,
            dropout=self.dropout, rotary_base=self.rotary_base,
        )

    @property
    def core_receptive_field(self) -> int:
        """Bins of the prefilter output that one output bin reads: ``n_layers * (window - 1) + 1``."""
        return self.n_layers * (self.window - 1) + 1

    def tokens(self, z: torch.Tensor) -> torch.Tensor:
        """The frequency embedding: z ``(B, C, F, T)`` -> tokens ``(B, T, d)``."""
        return self.embed(z).flatten(1, 2).transpose(1, 2)

    def forward_core(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Embedding and attention blocks: z ``(B, C, F, T)`` -> ``(B, d, T)`` (``lengths`` ignored)."""
        h = self.tokens(z)
        for block in self.blocks:
            h = block(h)
        return h.transpose(1, 2)
