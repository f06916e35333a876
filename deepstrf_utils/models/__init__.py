"""Response models: spectrogram ``(B, 1, F, T)`` (or movie ``(B, C, H, W, T)``) -> firing rate ``(B, N, T)``.

Every model is a plain ``nn.Module`` made of a **prefilter** (none, AdapTrans or Willmore's
high-pass), a **core** and a **readout**, strictly causal in time. The package holds:

==================  =====================================================================
``layers.py``       building blocks: STRF conv, output nonlinearities, locally connected
                    layer, identity prefilter, ``model_device``
``fastconv.py``     CPU-fast forms of the STRF conv and of Conv2d (same values): matrix
                    products over lags, a backward made of forward convolutions
``base.py``         ``make_prefilter`` and ``ResponseModel`` (config, stimulus check, and
                    what a model says about itself: receptive field, shared core, no-decay
                    parameters)
``linear.py``       ``Linear``, ``LinearNonlinear``
``nrf.py``          ``NetworkReceptiveField``, ``DNet``
``cnn.py``          ``ConvNet2D``, ``PopulationCNN``
``recurrent.py``    ``StateNet``
``transformer.py``  ``Transformer``: causal attention within a window of W bins
                    (blockwise, linear in T), ``banded_attention``
``zoo.py``          ``MODELS``: the models above by class name
``readouts.py``     ``LinearReadout``, ``DenseSigmoidReadout``, ``SessionReadouts``, ``StateGain``
``multisession.py`` ``MultiSessionModel`` (shared core, per-session readouts),
                    ``StateGainModel`` (any model + state gain)
``vision.py``       models of movies ``(B, C, H, W, T)``: ``PixelAdapTrans``, the base
                    ``VisualResponseModel``, ``VisualLinearNonlinear`` (+ ``fit_ridge_rf``)
``vision_cnn.py``   ``SpatioTemporalCNN``, ``RecurrentVisualNet`` (factorised causal core)
``vision_readouts.py`` ``GaussianReadout``, ``FactorisedReadout`` (feature maps -> neurons)
``registry.py``     ``MODELS`` and the composite models, ``VISUAL_MODELS``, ``build_model``,
                    ``count_parameters``
``views.py``        ``UnitView``: one output of a population model as a single-unit model
``ridge.py``        ``fit_ridge_strf``: closed-form ridge STRFs
==================  =====================================================================

The frequency-domain helpers (``causal_strf_fft``, ``leaky_integrate``, ...) live one
floor down in :mod:`deepstrf_utils.spectral`; every name that ``deepstrf_utils.models``
offered when it was one file is still importable from here.
"""

from ..spectral import causal_strf_fft, leaky_integrate, prefiltered_strf_fft
from ..submodules import lazy_submodules
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
from .readouts import DenseSigmoidReadout, LinearReadout, SessionReadouts, StateGain
from .registry import MODELS, VISUAL_MODELS, build_model, count_parameters
from .ridge import fit_ridge_strf
from .vision import PixelAdapTrans, VisualLinearNonlinear, VisualResponseModel, fit_ridge_rf, make_visual_prefilter
from .vision_cnn import RecurrentVisualNet, SpatioTemporalCNN
from .vision_readouts import FactorisedReadout, GaussianReadout
from .transformer import Transformer, banded_attention
from .views import UnitView
from .cnn import ConvNet2D, PopulationCNN
from .fastconv import STRF_IMPLEMENTATIONS
from .linear import Linear, LinearNonlinear
from .nrf import DNet, NetworkReceptiveField
from .recurrent import StateNet

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
    "UnitView",
    "LinearReadout",
    "DenseSigmoidReadout",
    "ResponseModel",
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
    "VisualResponseModel",
]

__getattr__, __dir__ = lazy_submodules(__name__, __path__, globals())
del lazy_submodules
