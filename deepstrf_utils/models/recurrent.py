"""Recurrent models: ``StateNet`` (Rançon et al. 2025: per bin a locally connected layer over
frequency -> normalisation -> sigmoid -> GRU or LSTM -> linear readout).

Its normalisation takes the statistics of a training batch over the VALID bins only when
given the stimuli's ``lengths`` (:class:`~.layers.MaskedBatchNorm2d`).

Shapes: B batch, C prefilter channels (2 with AdapTrans), F bands, T bins, N neurons, H hidden units.
"""

from __future__ import annotations

import torch
from torch import nn

from ..shapes import check_int
from .base import ResponseModel
from .layers import LocallyConnectedFrequency, MaskedBatchNorm2d, as_per_neuron, valid_mask
from .readouts import LinearReadout

__all__ = ["StateNet"]

class StateNet(ResponseModel):
    """StateNet (Rancon et al. 2025): per-frame locally connected layer -> recurrent core.

    Per time bin: :class:`LocallyConnectedFrequency` (``channels`` = 7 outputs, kernel 7,
    stride 3, unshared weights per position, bias) -> BatchNorm over the channels ->
    sigmoid -> flatten (channels x P; P = 10 for 34 bands) -> GRU or LSTM (hidden
    ``channels * P`` unless given) -> Linear(N). NS1 (34 bands, GRU, no prefilter, N = 1):
    30,465 parameters. Zero initial recurrent state.

    forward: x ``(B, 1, F, T)`` -> ``(B, N, T)``.
    """

    #: the per-neuron linear readout of the recurrent state (no output nonlinearity)
    readout_attributes = ("readout",)
    readout_nonlinearity = None

    def __init__(
        self, n_bands, n_neurons=1, rnn="gru", channels=7, kernel=7, stride=3, hidden=None,
        prefilter=None, prefilter_kwargs=None, dt_ms=5.0,
    ):
        super().__init__()
        self._setup(n_bands, n_neurons, prefilter, prefilter_kwargs, dt_ms)
        if rnn not in ("gru", "lstm"):
            raise ValueError(f"expected rnn 'gru' or 'lstm', got {rnn!r}")
        self.rnn_type = rnn
        self.channels = check_int(channels, "channels", 1)
        self.local = LocallyConnectedFrequency(
            self.in_channels, self.channels, self.n_bands, check_int(kernel, "kernel", 1), check_int(stride, "stride", 1)
        )
        self.n_positions = self.local.n_positions
        n_features = self.channels * self.n_positions
        self.n_hidden = n_features if hidden is None else check_int(hidden, "hidden", 1)
        self.norm = MaskedBatchNorm2d(self.channels)
        rnn_cls = nn.GRU if rnn == "gru" else nn.LSTM
        self.rnn = rnn_cls(n_features, self.n_hidden, batch_first=True)
        self.readout = nn.Linear(self.n_hidden, self.n_neurons)
        self._set_config(
            prefilter, prefilter_kwargs, rnn=rnn, channels=self.channels, kernel=self.local.kernel,
            stride=self.local.stride, hidden=self.n_hidden,
        )

    def forward_core(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Locally connected layer and recurrent layer: z ``(B, C, F, T)`` -> ``(B, hidden, T)``.

        lengths ``(B,)``: valid bins of each stimulus of a padded batch (on z's device), so
        that BatchNorm's training statistics skip the padding; None: every bin is valid.
        """
        return self.recurrent_output(self.recurrent_input(z, lengths))

    def recurrent_input(self, z: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Everything before the recurrence, bin by bin: z ``(B, C, F, T)`` -> ``(B, T, O * P)``
        (locally connected layer, BatchNorm over the valid bins, sigmoid)."""
        mask = valid_mask(lengths, z.shape[0], z.shape[-1])
        h = torch.sigmoid(self.norm(self.local(z), mask))  # (B, O, P, T)
        b, o, p, t = h.shape
        return h.permute(0, 3, 1, 2).reshape(b, t, o * p)

    def recurrent_output(self, h: torch.Tensor) -> torch.Tensor:
        """The recurrent layer from a zero state: ``(B, T, O * P)`` -> ``(B, hidden, T)`` (a view).
        Training on chunks of the sequence (:mod:`deepstrf_utils.training.chunks`) calls
        :meth:`recurrent_input` on whole stimuli and this on the chunks."""
        h, _ = self.rnn(h)  # (B, T, hidden)
        return h.transpose(1, 2)

    def forward_readout(self, h: torch.Tensor) -> torch.Tensor:
        """Per-neuron linear readout: ``(B, hidden, T) -> (B, N, T)``."""
        return self.readout(h.transpose(1, 2)).transpose(1, 2)

    @torch.no_grad()
    def init_output(self, mean, std) -> None:
        """Start at the data's scale: readout bias = target mean, weights scaled by ``std``."""
        std = as_per_neuron(std, self.n_neurons, "std").clamp_min(1e-6).to(self.readout.weight)
        self.readout.weight.mul_(std[:, None])
        self.readout.bias.copy_(as_per_neuron(mean, self.n_neurons, "mean").to(self.readout.bias))

    def linear_readout(self) -> LinearReadout:
        """The readout as a :class:`~.readouts.LinearReadout` (weights copied)."""
        return LinearReadout.copy_of(self.readout.weight, self.readout.bias)
