"""Scratch prototypes of faster fits (issue 11, phase 1): extra bench_fit modes.

Kept as the record of what was measured (benchmarks/README.md, "What was tried"); the
chosen pieces live in the library (training.fitting's L-BFGS path, training.warmstart).

Usage: python benchmarks/fastfit_proto.py --models Linear --modes ridge_lbfgs,adam1e-2_p10 --seeds 0
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import bench_fit  # noqa: E402
import types  # noqa: E402

from deepstrf_utils.training import fitting as _fitting  # noqa: E402

#: the private fitting helpers the prototypes use (training/fitting.py imports them all)
T = types.SimpleNamespace(**vars(_fitting))
from deepstrf_utils.models import Linear, LinearNonlinear, fit_ridge_strf  # noqa: E402


class Res:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@torch.no_grad()
def ridge_init(model, train, val):
    """Linear / LN: STRF from the closed-form ridge solution on the model's own (initial) prefilter channels."""
    if not isinstance(model, Linear):
        return False
    ridge, info = fit_ridge_strf(train, val, n_lags=model.n_lags, prefilter=model.prefilter)
    w, b = ridge.weight.detach(), ridge.bias.detach()
    if isinstance(model, LinearNonlinear):
        tr = T._Packed.from_dataset(train, torch.device("cpu"))
        mean, std = tr.target_stats()
        model.output_nonlinearity.init_output(mean, std)
        std = std.clamp_min(1e-6)
        model.weight.copy_(w / std[:, None, None, None])
        model.bias.copy_((b - mean) / std)
    else:
        model.weight.copy_(w)
        model.bias.copy_(b)
    return True


def fit_lbfgs(model, train, val, seed=0, max_iter=200, per_check=5, patience=4, l2=0.0, device="cpu",
              progress=False, init="ridge", history=20, lr=1.0, penalty=None):
    """Full-batch L-BFGS (strong Wolfe), validation every ``per_check`` iterations, best kept."""
    t0 = time.perf_counter()
    T.seed_everything(seed)
    dev = torch.device(device)
    tr = T._Packed.from_dataset(train, dev)
    va = T._Packed.from_dataset(val, dev)
    T._init_output(model, *tr.target_stats())
    decay = [p for n, p in model.named_parameters() if p.requires_grad and n not in T.no_decay_names(model)]
    alpha = 0.0
    if init == "ridge":
        ridge_init(model, train, val)
    elif init == "ridge_fast":
        alpha = ridge_init_fast(model, tr, va)
    if penalty == "ridge" and alpha:
        l2 = alpha / float(torch.isfinite(tr.target).sum())
        decay = [model.weight]
    loss_fn = T._get_loss("mse")
    x, y = tr.batch(list(range(tr.n_stimuli)))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.LBFGS(params, lr=lr, max_iter=per_check, history_size=history, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)
    model.train()

    def closure():
        opt.zero_grad()
        loss, _, _ = T._batch_loss(loss_fn, model(x), y)
        if l2:
            loss = loss + l2 * sum((p ** 2).sum() for p in decay)
        loss.backward()
        return loss

    best, best_state, since, k = math.inf, None, 0, 0
    v_per, v_valid = T._val_losses(model, va, loss_fn, 8, None)
    best = float(v_per.mean())
    best_state = {k_: t.detach().clone() for k_, t in model.state_dict().items()}
    best_k = 0
    tl, vl = [], [best]
    n_checks = max_iter // per_check
    reason = "max_iter"
    for k in range(1, n_checks + 1):
        model.train()
        loss = opt.step(closure)
        tl.append(float(loss.detach()))
        v_per, _ = T._val_losses(model, va, loss_fn, 8, None)
        v = float(v_per.mean())
        vl.append(v)
        if v < best * (1 - 1e-4):
            best, since, best_k = v, 0, k
            best_state = {k_: t.detach().clone() for k_, t in model.state_dict().items()}
        else:
            since += 1
            if since >= patience:
                reason = "patience"
                break
    model.load_state_dict(best_state)
    model.eval()
    return Res(epochs=k, best_epoch=best_k, stopped_early=reason == "patience", stop_reason=reason,
               wall_s=time.perf_counter() - t0, train_loss=tl, val_loss=vl)


def fit_warm(model, train, val, seed=0, **kw):
    """Ridge-initialised STRF (L / LN), then the library's fit without init_output."""
    t0 = time.perf_counter()
    tr = T._Packed.from_dataset(train, torch.device("cpu"))
    T._init_output(model, *tr.target_stats())
    ridge_init(model, train, val)
    return T.fit(model, train, val, seed=seed, init_output=False, **kw)


PROTO = {
    "adam1e-2_p10": (None, dict(lr=1e-2, patience=10)),
    "adam3e-3_p20": (None, dict(lr=3e-3, patience=20)),
    "adam1e-2_p20": (None, dict(lr=1e-2, patience=20)),
    "adam1e-2_plat": (None, dict(lr=1e-2, patience=20, scheduler="plateau", scheduler_kwargs={"patience": 4})),
    "adam3e-3_plat": (None, dict(lr=3e-3, patience=20, scheduler="plateau", scheduler_kwargs={"patience": 4})),
    "adam1e-2_b4_p10": (None, dict(lr=1e-2, patience=10, batch_size=4)),
    "ridge_adam1e-3_p10": (fit_warm, dict(lr=1e-3, patience=10)),
    "ridge_adam3e-3_p10": (fit_warm, dict(lr=3e-3, patience=10)),
    "ridge_only": (fit_warm, dict(lr=1e-9, max_epochs=1, patience=1)),
    "ridge_lbfgs": (fit_lbfgs, dict()),
    "ridge_lbfgs_p2": (fit_lbfgs, dict(patience=2)),
    "lbfgs": (fit_lbfgs, dict(init=None)),
    "rfast_lbfgs_p2": (fit_lbfgs, dict(init="ridge_fast", patience=2)),
    "rfast_lbfgs_pen_p2": (fit_lbfgs, dict(init="ridge_fast", patience=2, penalty="ridge")),
    "lbfgs_p2": (fit_lbfgs, dict(init=None, patience=2)),
}


def install():
    for name, (fitter, kw) in PROTO.items():
        bench_fit.MODES[name] = kw
        if fitter is not None:
            bench_fit.FITTERS[name] = fitter




# ------------------------------------------------------------------ fast ridge (Cholesky, alpha search)
def _lagged(z: torch.Tensor, K: int) -> torch.Tensor:
    """z (C, F, T) -> causal lagged design (T, C*F*K), column (c, f, k) = z[c, f, t - k]."""
    c, f, t = z.shape
    zp = torch.nn.functional.pad(z, (K - 1, 0))
    win = zp.unfold(-1, K, 1).flip(-1)  # (C, F, T, K): [..., t, k] = z[t - k]
    return win.permute(2, 0, 1, 3).reshape(t, c * f * K)


@torch.no_grad()
def ridge_solve(model, tr, va, rel_alphas=10.0 ** np.arange(-4, 1.01, 1.0), refine=True):
    """Ridge STRF (C,F,K) + bias on the model's current prefilter channels; alpha by validation MSE."""
    K = model.n_lags
    def design(p):
        z = model.prefilter(p.stim).double()
        xs, ys = [], []
        for i, L in enumerate(p._lengths_list):
            xs.append(_lagged(z[i, :, :, :L], K))
            ys.append(p.target[i, :, :L].double().T)
        x, y = torch.cat(xs), torch.cat(ys)
        ok = torch.isfinite(y).all(1)
        return x[ok], y[ok]
    x, y = design(tr)
    xv, yv = design(va)
    mx, my = x.mean(0), y.mean(0)
    xc = x - mx
    gram = torch.from_numpy(xc.numpy().T @ xc.numpy())
    cross = xc.T @ (y - my)
    scale = float(gram.diagonal().mean())
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)

    def solve(a):
        L, info = torch.linalg.cholesky_ex(gram + a * scale * eye)
        w = torch.cholesky_solve(cross, L)
        err = float((((xv - mx) @ w + my - yv) ** 2).mean())
        return err, w
    results = {float(a): solve(float(a)) for a in rel_alphas}
    best = min(results, key=lambda a: results[a][0])
    if refine:
        for a in (best / 10 ** 0.5, best * 10 ** 0.5):
            results[a] = solve(a)
        best = min(results, key=lambda a: results[a][0])
    w = results[best][1]
    b = my - mx @ w
    n = model.weight.shape[0]
    return w.T.reshape(n, *model.weight.shape[1:]).float(), b.float(), best * scale, results[best][0]


@torch.no_grad()
def ridge_init_fast(model, tr, va):
    w, b, alpha, err = ridge_solve(model, tr, va)
    if isinstance(model, LinearNonlinear):
        mean, std = tr.target_stats()
        model.output_nonlinearity.init_output(mean, std)
        std = std.clamp_min(1e-6)
        model.weight.copy_(w / std[:, None, None, None])
        model.bias.copy_((b - mean) / std)
    else:
        model.weight.copy_(w)
        model.bias.copy_(b)
    return alpha




def _channels_last_features(self, x):
    h = self._prefiltered(x).contiguous(memory_format=torch.channels_last)
    pad = (self.kernel_size[1] - 1, 0)
    for conv, norm in zip(self.convs, self.norms):
        h = torch.nn.functional.leaky_relu(norm(conv(torch.nn.functional.pad(h, pad))), self.negative_slope)
    return h.contiguous()


def fit_lbfgs_cl(model, train, val, **kw):
    from deepstrf_utils.models import ConvNet2D
    if isinstance(model, ConvNet2D):
        ConvNet2D.features = _channels_last_features
        pass
    return fit_lbfgs(model, train, val, **kw)


def fit_adam_cl(model, train, val, **kw):
    from deepstrf_utils.models import ConvNet2D
    if isinstance(model, ConvNet2D):
        ConvNet2D.features = _channels_last_features
        pass
    return T.fit(model, train, val, **kw)


PROTO.update({
    "lib_adam3e-3_p10": (None, dict(optimizer="adamw", lr=3e-3, patience=10)),
    "lib_adam1e-2_p10": (None, dict(optimizer="adamw", lr=1e-2, patience=10)),
    "lib_lbfgs_p4": (None, dict(optimizer="lbfgs", patience=4)),
    "lib_lbfgs_p3": (None, dict(optimizer="lbfgs", patience=3)),
    "lib_adam3e-3_b12_p10": (None, dict(optimizer="adamw", lr=3e-3, batch_size=12, patience=10)),
    "lbfgs_cl_p2": (fit_lbfgs_cl, dict(init=None, patience=2)),
    "adam_cl_p10": (fit_adam_cl, dict(lr=1e-3, patience=10)),
    "adam3e-3_cl_p10": (fit_adam_cl, dict(lr=3e-3, patience=10)),
})


if __name__ == "__main__":
    install()
    bench_fit.main()
