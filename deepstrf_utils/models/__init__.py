"""Response models: spectrogram ``(B, 1, F, T)`` (or movie ``(B, C, H, W, T)``) -> firing rate ``(B, N, T)``.

Every model is a plain ``nn.Module`` made of a **prefilter** (none, AdapTrans or Willmore's
high-pass), a **core** and a **readout**, strictly causal in time. The package holds:

=================  ======================================================================
``layers.py``      building blocks: STRF conv, output nonlinearities, locally connected
                   layer, identity prefilter, ``model_device``
``fastconv.py``    CPU-fast forms of the STRF conv and of Conv2d (same values): matrix
                   products over lags, a backward made of forward convolutions
``base.py``        ``make_prefilter`` and ``ResponseModel`` (config, stimulus check)
``zoo.py``         the paper models: ``Linear``, ``LinearNonlinear``,
                   ``NetworkReceptiveField``, ``DNet``, ``ConvNet2D``, ``StateNet``,
                   ``PopulationCNN``
``transformer.py`` ``Transformer``: causal attention within a window of W bins
                   (blockwise, linear in T), ``banded_attention``
``ridge.py``       ``fit_ridge_strf``: closed-form ridge STRFs
``readouts.py``    ``LinearReadout``, ``SessionReadouts``, ``StateGain`` (readouts of their own)
``multisession.py`` ``MultiSessionModel`` (shared core, per-session readouts),
                   ``StateGainModel`` (any model + state gain)
``registry.py``    ``MODELS``, ``VISUAL_MODELS``, ``build_model``, ``count_parameters``
``visual.py``      models of movies ``(B, C, H, W, T)``: ``PixelAdapTrans``,
                   ``VisualLinearNonlinear`` (+ ``fit_ridge_rf``), ``SpatioTemporalCNN``,
                   ``RecurrentVisualNet``
``visual_readouts`` ``GaussianReadout``, ``FactorisedReadout`` (feature maps -> neurons)
=================  ======================================================================

The frequency-domain helpers (``causal_strf_fft``, ``leaky_integrate``, ...) live one
floor down in :mod:`deepstrf_utils.spectral`; every name that ``deepstrf_utils.models``
offered when it was one file is still importable from here.
"""

from ..spectral import causal_strf_fft, leaky_integrate, prefiltered_strf_fft
from .base import MODEL_ADAPTRANS_RECTIFY, PREFILTERS, ResponseModel, make_prefilter
from .layers import (
    DoubleExponential,
    LocallyConnectedFrequency,
    NoPrefilter,
    ParametricNonlinearity,
    ParametricSigmoid,
    as_per_neuron,
    causal_strf_conv,
    model_device,
)
from .multisession import MultiSessionModel, StateGainModel
from .readouts import LinearReadout, SessionReadouts, StateGain
from .registry import MODELS, VISUAL_MODELS, build_model, count_parameters
from .ridge import fit_ridge_strf
from .visual import (
    PixelAdapTrans,
    RecurrentVisualNet,
    SpatioTemporalCNN,
    VisualLinearNonlinear,
    fit_ridge_rf,
    make_visual_prefilter,
)
from .visual_readouts import FactorisedReadout, GaussianReadout
from .transformer import Transformer, banded_attention
from .zoo import (
    STRF_IMPLEMENTATIONS,
    ConvNet2D,
    DNet,
    Linear,
    LinearNonlinear,
    NetworkReceptiveField,
    PopulationCNN,
    StateNet,
)

__all__ = [
    "Linear",
    "LinearNonlinear",
    "NetworkReceptiveField",
    "DNet",
    "ConvNet2D",
    "StateNet",
    "PopulationCNN",
    "Transformer",
    "banded_attention",
    "MultiSessionModel",
    "StateGainModel",
    "LinearReadout",
    "SessionReadouts",
    "StateGain",
    "ParametricSigmoid",
    "ParametricNonlinearity",
    "DoubleExponential",
    "leaky_integrate",
    "make_prefilter",
    "build_model",
    "count_parameters",
    "fit_ridge_strf",
    "MODELS",
    "VISUAL_MODELS",
    "model_device",
    "PixelAdapTrans",
    "VisualLinearNonlinear",
    "SpatioTemporalCNN",
    "RecurrentVisualNet",
    "GaussianReadout",
    "FactorisedReadout",
    "fit_ridge_rf",
    "make_visual_prefilter",
]
