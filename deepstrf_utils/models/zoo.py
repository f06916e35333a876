"""The model zoo: every model that maps a stimulus alone to responses, by class name.

=========================  ================================================================
``Linear``                 STRF (C, F, K) + bias per neuron                    (:mod:`.linear`)
``LinearNonlinear``        Linear + per-neuron parametric output nonlinearity  (:mod:`.linear`)
``NetworkReceptiveField``  Harper et al. (2016): H sigmoid hidden STRF units -> sigmoid output
                                                                               (:mod:`.nrf`)
``DNet``                   Rahman et al. (2019): NRF with leaky-integrator units (:mod:`.nrf`)
``ConvNet2D``              deepSTRF 2D-CNN used in the AdapTrans paper (37,276 params, NS1)
                                                                               (:mod:`.cnn`)
``PopulationCNN``          Pennington & David (2023) NAT4 population CNN (21,360 shared params)
                                                                               (:mod:`.cnn`)
``StateNet``               Rançon et al. (2025): locally connected layer -> GRU / LSTM
                                                                               (:mod:`.recurrent`)
``Transformer``            Rançon et al. (2025): causal attention within a window (:mod:`.transformer`)
=========================  ================================================================

Every model is a plain ``nn.Module`` made of a **prefilter** (none, AdapTrans or Willmore's
high-pass), a **core** and a **readout** (:class:`~.base.ResponseModel`), and is strictly
causal in time: the prediction at bin ``t`` depends on inputs at bins ``<= t`` only (left
padding only). Every model's ``forward(x, lengths=None)`` and ``forward_core(z, lengths=None)``
accept the valid ``lengths`` of a padded batch; the models without BatchNorm ignore them.
"""

from __future__ import annotations

from torch import nn

from .cnn import ConvNet2D, PopulationCNN
from .linear import Linear, LinearNonlinear
from .nrf import DNet, NetworkReceptiveField
from .recurrent import StateNet
from .transformer import Transformer

__all__ = ["MODELS"]

#: The zoo: class name -> class, every model ``forward(x (B, 1, F, T)) -> (B, N, T)``.
MODELS: dict[str, type[nn.Module]] = {
    "Linear": Linear,
    "LinearNonlinear": LinearNonlinear,
    "NetworkReceptiveField": NetworkReceptiveField,
    "DNet": DNet,
    "ConvNet2D": ConvNet2D,
    "StateNet": StateNet,
    "PopulationCNN": PopulationCNN,
    "Transformer": Transformer,
}
