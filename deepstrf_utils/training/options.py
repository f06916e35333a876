"""The fitting options of :func:`~.fitting.fit` / :func:`~.stacked.fit_single_units`: the two
optimiser paths, their defaults, and the rules that resolve ``"auto"`` / None arguments
(chosen in ``benchmarks/bench_fit_quality.py`` on real and mismatched data; speed in ``bench_fit.py``)."""
from __future__ import annotations

from torch import nn

from ..adaptrans import AdapTrans
from ..models import LinearNonlinear, NetworkReceptiveField, Transformer
from .chunks import check_train_chunk, supports_chunks
from .warmstart import supports_ridge_init

__all__ = ["ADAMW_FIT_KWARGS", "LBFGS_ITERATIONS_PER_EPOCH", "LBFGS_CHUNK", "RECURRENT_AUTO", "RIDGE_START_PATIENCE",
           "RECURRENT_CHUNK_WITHOUT_ADAPTRANS", "WEIGHT_DECAY", "LBFGS_MIN_EPOCHS", "RIDGE_START_MIN_EPOCHS",
           "LN_STARTS", "ADAMW_AUTO"]

#: the previous defaults of :func:`fit` (AdamW lr 1e-3, weight decay 1e-2, batch 8, patience 50) as
#: explicit arguments; the published protocol of each dataset is
#: ``deepstrf_utils.runs.protocols.protocol_fit_kwargs(dataset)``
ADAMW_FIT_KWARGS = dict(optimizer="adamw", init=None, lr=1e-3, weight_decay=1e-2, max_epochs=1000, patience=50,
                        batch_size=8, rel_tol=0.0)
#: L-BFGS iterations between two validation checks: one "epoch" of the L-BFGS path
LBFGS_ITERATIONS_PER_EPOCH = 5
#: stimuli per forward pass when L-BFGS accumulates its full-batch gradient (bounds memory)
LBFGS_CHUNK = 64
#: stimuli per AdamW step (and per validation pass) when ``batch_size`` is None
BATCH_SIZE = 8
#: AdamW's decoupled weight decay when ``weight_decay`` is None (the L-BFGS path: none)
WEIGHT_DECAY = 1e-2
#: what arguments left at None / "auto" become on each path
_DEFAULTS = {
    "adamw": dict(lr=1e-3, max_epochs=1000, patience=50, rel_tol=0.0),
    "lbfgs": dict(lr=1.0, max_epochs=200, patience=3, rel_tol=1e-4),
}
#: L-BFGS: patience cannot stop a fit from a random start before this many epochs (its
#: validation loss often rises in the first epochs before it falls; benchmarks/bench_fit_quality.py)
LBFGS_MIN_EPOCHS = 10
#: L-BFGS patience (epochs) after a closed-form ridge start (Linear / LN), and the epochs it
#: runs at least: the start must get the chance to be left (benchmarks/bench_fit_quality.py)
RIDGE_START_PATIENCE = 3
RIDGE_START_MIN_EPOCHS = 5
#: the L-BFGS starts that ``optimizer="auto"`` fits a LinearNonlinear model from, keeping the one
#: with the lower validation loss: the closed-form ridge start (its penalty kept) and the random
#: start. Neither was as accurate as AdamW on every set alone (TORC unit without AdapTrans: ridge
#: start 0.26 vs random 0.45 test CCnorm; starling song: 0.60 vs -0.02); the race was on every
#: real and mismatched set but the starling song (benchmarks/README.md, bench_fit_quality.py)
LN_STARTS = ("ridge", None)
#: AdamW settings that ``optimizer="auto"`` uses for NetworkReceptiveField and DNet: L-BFGS
#: (random start, or after AdamW warm-up epochs) fell 0.10-0.45 test CCnorm below AdamW on some
#: neurons of the TORC unit and of the mismatched population; lr 3e-3 with patience 20 matched
#: AdamW at lr 1e-3 / patience 50 on every one (worst -0.04) at about 0.4x its CPU time
#: (benchmarks/README.md, bench_fit_quality.py). Only with more training stimuli than one batch
#: (``batch_size``): with one AdamW step per epoch (the starling song's 6 training segments) lr
#: 3e-3 left 2 of 5 fits at a flat prediction (test CCnorm ~0.03); there the AdamW defaults
#: (:data:`ADAMW_FIT_KWARGS`' lr 1e-3, patience 50) apply.
ADAMW_AUTO = dict(lr=3e-3, max_epochs=1000, patience=20, rel_tol=0.0, batch_size=8)
#: AdamW settings that ``optimizer="auto"`` uses for recurrent models that have no better
#: path (measured, issue 11, ``benchmarks/README.md``: L-BFGS is not better than AdamW there):
#: training on chunks of 16 bins with 8 bins of burn-in (``fit(..., train_chunk=(16, 8))``,
#: :mod:`.chunks`), 4 stimuli per step, lr 2e-3, patience 8: the published protocol's test
#: accuracy at about 1/6 of its CPU time for StateNet on one neuron of ~4,000 bins
RECURRENT_AUTO = dict(lr=2e-3, max_epochs=1000, patience=8, rel_tol=0.0, chunk=(16, 8), batch_size=4)
#: the chunk of :data:`RECURRENT_AUTO` for a recurrent model WITHOUT an AdapTrans prefilter. The
#: short chunk suits models whose slow adaptation is in AdapTrans (run on whole songs before the
#: chunks); without it the recurrence must carry that memory itself, and 16 / 8 bins cost StateNet
#: 0.08-0.10 test CCnorm (0.70-0.72 against 0.80 on whole songs, 2 seeds), 64 / 64 none (0.78-0.81)
#: at 0.6x the whole-song CPU time (benchmarks/README.md)
RECURRENT_CHUNK_WITHOUT_ADAPTRANS = (64, 64)


def _is_recurrent(model: nn.Module) -> bool:
    """A GRU / LSTM or an attention core inside: models that ``optimizer="auto"`` sends to AdamW
    (:data:`RECURRENT_AUTO`; the Transformer on whole stimuli: L-BFGS stopped it at a poor early
    plateau, benchmarks/bench_transformer.py)."""
    return any(isinstance(m, (nn.RNNBase, Transformer)) for m in model.modules())


def _resolve_fit_options(model, optimizer, init, lr, max_epochs, patience, rel_tol, prefilter_lr=None,
                         scheduler=None, clip_grad=None, force_adamw=False, train_chunk=None, batch_size=None,
                         weight_decay=None, n_stimuli=None) -> dict:
    """The effective optimiser settings: ``"auto"`` / None arguments resolved (see :func:`~.fitting.fit`).

    ``optimizer="auto"`` takes AdamW when an AdamW-only setting is given (``lr``,
    ``prefilter_lr``, ``scheduler``, ``clip_grad``), and also when ``weight_decay`` or
    ``batch_size`` is given for a model whose default would be L-BFGS (so that they apply);
    a recurrent model keeps :data:`RECURRENT_AUTO` with them, an NRF / DNet :data:`ADAMW_AUTO`
    (when ``n_stimuli``, the number of training stimuli, exceeds its batch; None: it does).
    :data:`LN_STARTS` for LinearNonlinear on the L-BFGS path: ``starts`` lists the L-BFGS
    starts (init, patience, minimum epochs) to fit and race. ``weight_decay`` None:
    :data:`WEIGHT_DECAY` on the AdamW path, 0 on the L-BFGS path (explicit: an L2 penalty
    there, :func:`~.objective.l2_penalty`). ``batch_size`` with ``optimizer="lbfgs"``: ValueError.
    ``train_chunk="auto"``: :data:`RECURRENT_AUTO`'s ``chunk`` when ``optimizer="auto"`` chose
    AdamW for a recurrent model that can be chunked (and no AdamW setting was given), else None.
    """
    defaults = None
    if optimizer == "auto":
        adamw_only = (lr, prefilter_lr, scheduler, clip_grad)
        optimizer = "adamw" if force_adamw or any(v is not None for v in adamw_only) else "lbfgs"
        if optimizer == "lbfgs" and _is_recurrent(model):
            optimizer, defaults = "adamw", RECURRENT_AUTO
        elif optimizer == "lbfgs" and isinstance(model, NetworkReceptiveField):  # DNet too
            several_steps = n_stimuli is None or n_stimuli > ADAMW_AUTO["batch_size"]
            optimizer, defaults = "adamw", (ADAMW_AUTO if several_steps else None)
        elif optimizer == "lbfgs" and (weight_decay is not None or batch_size is not None):
            optimizer = "adamw"  # minibatch settings: they apply on the AdamW path only
    if optimizer not in _DEFAULTS:
        raise ValueError(f"expected optimizer 'auto', 'adamw' or 'lbfgs', got {optimizer!r}")
    if optimizer == "lbfgs" and (prefilter_lr is not None or scheduler is not None or clip_grad is not None):
        raise ValueError("prefilter_lr, scheduler and clip_grad are AdamW settings; got them with optimizer='lbfgs'")
    if optimizer == "lbfgs" and batch_size is not None:
        raise ValueError(f"batch_size is a setting of the AdamW path (L-BFGS takes every training stimulus in "
                         f"each step); got batch_size={batch_size!r} with optimizer='lbfgs': leave it unset or "
                         "pass optimizer='adamw'")
    starts = None
    if init == "auto":
        init = "ridge" if optimizer == "lbfgs" and supports_ridge_init(model) else None
        if init == "ridge" and isinstance(model, LinearNonlinear):
            starts = LN_STARTS
    if init not in (None, "ridge"):
        raise ValueError(f"expected init 'auto', 'ridge' or None, got {init!r}")
    if init == "ridge" and not supports_ridge_init(model):
        raise ValueError(f"init='ridge' needs a Linear or LinearNonlinear model, got {type(model).__name__}")
    d = defaults or _DEFAULTS[optimizer]
    auto_patience = isinstance(patience, str) and patience == "auto"

    def start(i):  # an L-BFGS start: its init, patience and minimum number of epochs
        p = (RIDGE_START_PATIENCE if i == "ridge" else d["patience"]) if auto_patience else patience
        return dict(init=i, patience=p, min_epochs=RIDGE_START_MIN_EPOCHS if i == "ridge" else LBFGS_MIN_EPOCHS)

    starts = [start(i) for i in (starts or (init,))] if optimizer == "lbfgs" else []
    if auto_patience:
        patience = starts[0]["patience"] if starts else d["patience"]
    if isinstance(train_chunk, str) and train_chunk == "auto":
        train_chunk = d.get("chunk") if supports_chunks(model) else None
        if train_chunk is not None and not isinstance(getattr(model, "prefilter", None), AdapTrans):
            train_chunk = RECURRENT_CHUNK_WITHOUT_ADAPTRANS
    train_chunk = check_train_chunk(train_chunk, model)
    if train_chunk is not None and optimizer != "adamw":
        raise ValueError(f"train_chunk is a setting of the AdamW path; got it with optimizer={optimizer!r}")
    if weight_decay is None:
        weight_decay = WEIGHT_DECAY if optimizer == "adamw" else 0.0
    return dict(optimizer=optimizer, init=init, train_chunk=train_chunk, lr=d["lr"] if lr is None else lr,
                weight_decay=weight_decay, starts=starts,
                batch_size=d.get("batch_size", BATCH_SIZE) if batch_size is None else batch_size,
                max_epochs=d["max_epochs"] if max_epochs is None else max_epochs,
                patience=patience,
                rel_tol=d["rel_tol"] if rel_tol is None else rel_tol)
