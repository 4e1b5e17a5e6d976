"""runner.optim: every optimizer against a float64 NumPy reference (R11).

The references for SGD, Momentum, Nesterov and the playbook RMSProp, Adam and NAdam are
written from the source document's formulas (section "所有流行的优化算法的更新规则是什么");
those for torch's Adam, AdamW, RMSprop and NAdam from torch's documented algorithms, to check
that build_optimizer hands each hyperparameter to the right argument. Gradients are random
tensors set directly, the learning rate changes every step (as the training loop sets it), and
several parameters of different shapes are updated together.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from runner.optim import PlaybookAdam, PlaybookNAdam, PlaybookRMSProp, build_optimizer
from runner.spec import OPTIMIZERS, OptimizerSpec, SpecError

SHAPES = [(3, 4), (5,), (2, 3, 2), ()]
STEPS = 8
LRS = [0.1 * (0.7**i) + 0.01 * i for i in range(STEPS)]  # a per-step rate, as the loop sets it

Arrays = list[np.ndarray]
State = dict[str, Arrays]
# ref(params, grads, lr, t, state, hparams) updates params in place; t = updates already made
Ref = Callable[[Arrays, Arrays, float, int, State, dict[str, float]], None]


def _data(seed: int = 0) -> tuple[Arrays, list[Arrays]]:
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=s) for s in SHAPES]
    grads = [[rng.normal(size=s) * (1 + 3 * k) for s in SHAPES] for k in range(STEPS)]
    return params, grads


def _init(state: State, key: str, params: Arrays, value: float) -> Arrays:
    if key not in state:
        state[key] = [np.full_like(p, value) for p in params]
    return state[key]


# --- references from the source document (R11) -------------------------------------------


def ref_sgd(p: Arrays, g: Arrays, lr: float, t: int, st: State, h: dict[str, float]) -> None:
    for i in range(len(p)):
        gi = g[i] + h.get("weight_decay", 0.0) * p[i]
        p[i] -= lr * gi  # theta_{t+1} = theta_t - eta_t grad


def ref_momentum(p: Arrays, g: Arrays, lr: float, t: int, st: State, h: dict[str, float]) -> None:
    v = _init(st, "v", p, 0.0)  # v_0 = 0
    for i in range(len(p)):
        v[i] = h["momentum"] * v[i] + g[i]  # v_{t+1} = gamma v_t + grad
        p[i] -= lr * v[i]  # theta_{t+1} = theta_t - eta_t v_{t+1}


def ref_nesterov(p: Arrays, g: Arrays, lr: float, t: int, st: State, h: dict[str, float]) -> None:
    v = _init(st, "v", p, 0.0)
    gamma = h["momentum"]
    for i in range(len(p)):
        v[i] = gamma * v[i] + g[i]
        p[i] -= lr * (gamma * v[i] + g[i])  # theta - eta_t (gamma v_{t+1} + grad)


def ref_pb_rmsprop(p: Arrays, g: Arrays, lr: float, t: int, st: State, h: dict[str, float]) -> None:
    v = _init(st, "v", p, 1.0)  # v_0 = 1
    m = _init(st, "m", p, 0.0)  # m_0 = 0
    rho, gamma, eps = h["rho"], h["momentum"], h["eps"]
    for i in range(len(p)):
        gi = g[i] + h["weight_decay"] * p[i]
        v[i] = rho * v[i] + (1 - rho) * gi**2
        m[i] = gamma * m[i] + lr / np.sqrt(v[i] + eps) * gi
        p[i] -= m[i]


def _pb_adam(nesterov: bool) -> Ref:
    def ref(p: Arrays, g: Arrays, lr: float, t: int, st: State, h: dict[str, float]) -> None:
        m = _init(st, "m", p, 0.0)
        v = _init(st, "v", p, 0.0)
        b1, b2, eps = h["beta1"], h["beta2"], h["eps"]
        b = math.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))  # b_{t+1}
        for i in range(len(p)):
            gi = g[i] + h["weight_decay"] * p[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi**2
            num = b1 * m[i] + (1 - b1) * gi if nesterov else m[i]
            p[i] -= lr * num / (np.sqrt(v[i]) + eps) * b

    return ref


# --- references from torch's documented algorithms ---------------------------------------


def _torch_adam(decoupled: bool) -> Ref:
    def ref(p: Arrays, g: Arrays, lr: float, t: int, st: State, h: dict[str, float]) -> None:
        m = _init(st, "m", p, 0.0)
        v = _init(st, "v", p, 0.0)
        b1, b2, eps, wd = h["beta1"], h["beta2"], h["eps"], h["weight_decay"]
        step = t + 1
        for i in range(len(p)):
            gi = g[i]
            if decoupled:
                p[i] *= 1 - lr * wd
            else:
                gi = gi + wd * p[i]
            m[i] = b1 * m[i] + (1 - b1) * gi
            v[i] = b2 * v[i] + (1 - b2) * gi**2
            mhat = m[i] / (1 - b1**step)
            vhat = v[i] / (1 - b2**step)
            p[i] -= lr * mhat / (np.sqrt(vhat) + eps)

    return ref


def ref_torch_rmsprop(
    p: Arrays, g: Arrays, lr: float, t: int, st: State, h: dict[str, float]
) -> None:
    v = _init(st, "v", p, 0.0)
    buf = _init(st, "buf", p, 0.0)
    alpha, eps, mom = h["rho"], h["eps"], h["momentum"]
    for i in range(len(p)):
        gi = g[i] + h["weight_decay"] * p[i]
        v[i] = alpha * v[i] + (1 - alpha) * gi**2
        avg = np.sqrt(v[i]) + eps
        if mom > 0:
            buf[i] = mom * buf[i] + gi / avg
            p[i] -= lr * buf[i]
        else:
            p[i] -= lr * gi / avg


def ref_torch_nadam(
    p: Arrays, g: Arrays, lr: float, t: int, st: State, h: dict[str, float]
) -> None:
    m = _init(st, "m", p, 0.0)
    v = _init(st, "v", p, 0.0)
    b1, b2, eps, psi = h["beta1"], h["beta2"], h["eps"], 4e-3
    step = t + 1
    mu = b1 * (1 - 0.5 * 0.96 ** (step * psi))
    mu_next = b1 * (1 - 0.5 * 0.96 ** ((step + 1) * psi))
    prod = st.setdefault("mu_product", [np.ones(())])
    # torch keeps mu_product in a float32 tensor: mu is rounded to float32, so is the product
    prod[0] = np.float64(np.float32(prod[0]) * np.float32(mu))
    for i in range(len(p)):
        gi = g[i] + h["weight_decay"] * p[i]
        m[i] = b1 * m[i] + (1 - b1) * gi
        v[i] = b2 * v[i] + (1 - b2) * gi**2
        denom = np.sqrt(v[i] / (1 - b2**step)) + eps
        p[i] -= lr * (1 - mu) / (1 - prod[0]) * gi / denom
        p[i] -= lr * mu_next / (1 - prod[0] * mu_next) * m[i] / denom


# name -> (spec hyperparameters, reference). The reference gets the same hyperparameters, and
# weight_decay 0 where they leave it out: the default of every optimizer but AdamW, whose case
# sets it.
CASES: dict[str, tuple[dict[str, float], Ref]] = {
    "sgd": ({}, ref_sgd),
    "momentum": ({"momentum": 0.8}, ref_momentum),
    "nesterov": ({"momentum": 0.7}, ref_nesterov),
    "adam": (
        {"beta1": 0.8, "beta2": 0.95, "eps": 1e-3, "weight_decay": 0.01},
        _torch_adam(decoupled=False),
    ),
    "adamw": (
        {"beta1": 0.8, "beta2": 0.95, "eps": 1e-3, "weight_decay": 0.1},
        _torch_adam(decoupled=True),
    ),
    "rmsprop": ({"rho": 0.9, "eps": 1e-3, "momentum": 0.5}, ref_torch_rmsprop),
    "nadam": ({"beta1": 0.85, "beta2": 0.97, "eps": 1e-3}, ref_torch_nadam),
    "playbook_rmsprop": ({"rho": 0.8, "momentum": 0.6, "eps": 1e-2}, ref_pb_rmsprop),
    "playbook_adam": ({"beta1": 0.8, "beta2": 0.95, "eps": 1e-2}, _pb_adam(nesterov=False)),
    "playbook_nadam": ({"beta1": 0.8, "beta2": 0.95, "eps": 1e-2}, _pb_adam(nesterov=True)),
}


def _torch_params(params: Arrays, dtype: torch.dtype = torch.float64) -> list[torch.Tensor]:
    return [torch.tensor(p, dtype=dtype, requires_grad=True) for p in params]


def _step(opt: torch.optim.Optimizer, params: list[torch.Tensor], grads: Arrays, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
    for p, g in zip(params, grads, strict=True):
        p.grad = torch.tensor(g, dtype=p.dtype)
    opt.step()


def _run_reference(ref: Ref, h: dict[str, float], seed: int = 0) -> Arrays:
    params, grads = _data(seed)
    state: State = {}
    for t in range(STEPS):
        ref(params, grads[t], LRS[t], t, state, h)
    return params


def test_every_optimizer_has_a_case() -> None:
    assert set(CASES) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", list(CASES))
def test_optimizer_matches_numpy_reference(name: str) -> None:
    hp, ref = CASES[name]
    ref_h = {"weight_decay": 0.0, **hp}
    params, grads = _data()
    tp = _torch_params(params)
    opt = build_optimizer(tp, OptimizerSpec(name=name, lr=LRS[0], **hp))
    for t in range(STEPS):
        _step(opt, tp, grads[t], LRS[t])
    expected = _run_reference(ref, ref_h)
    for got, want in zip(tp, expected, strict=True):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-10, atol=1e-12)
    # the updates are not trivially zero
    assert not np.allclose(tp[0].detach().numpy(), params[0])


@pytest.mark.parametrize(
    ("cls", "ref"),
    [
        (PlaybookRMSProp, ref_pb_rmsprop),
        (PlaybookAdam, _pb_adam(nesterov=False)),
        (PlaybookNAdam, _pb_adam(nesterov=True)),
    ],
)
def test_playbook_defaults_and_weight_decay(cls: type[torch.optim.Optimizer], ref: Ref) -> None:
    params, grads = _data(1)
    tp = _torch_params(params)
    opt = cls(tp, lr=LRS[0], weight_decay=0.05)
    group = opt.param_groups[0]
    h = {k: v for k, v in group.items() if k not in ("params", "lr", "betas")}
    if "betas" in group:
        h["beta1"], h["beta2"] = group["betas"]
    for t in range(STEPS):
        _step(opt, tp, grads[t], LRS[t])
    expected = _run_reference(ref, h, seed=1)
    for got, want in zip(tp, expected, strict=True):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-10, atol=1e-12)


def test_playbook_defaults_documented() -> None:
    p = [torch.zeros(2, requires_grad=True)]
    assert PlaybookAdam(p).defaults["betas"] == (0.9, 0.999)
    assert PlaybookAdam(p).defaults["eps"] == 1e-8
    rms = PlaybookRMSProp(p).defaults
    assert (rms["rho"], rms["momentum"], rms["eps"]) == (0.9, 0.0, 1e-7)


def test_playbook_adam_equals_torch_adam_with_eps_t() -> None:
    """R11: the source's Adam is torch's Adam with eps_t = eps / sqrt(1 - beta2^t)."""
    eps, b1, b2 = 1e-2, 0.85, 0.9  # a large eps, so that how it enters matters
    params, grads = _data(2)
    mine = _torch_params(params)
    theirs = _torch_params(params)
    naive = _torch_params(params)
    opt_mine = PlaybookAdam(mine, lr=0.1, betas=(b1, b2), eps=eps)
    opt_theirs = torch.optim.Adam(theirs, lr=0.1, betas=(b1, b2), eps=eps, foreach=False)
    opt_naive = torch.optim.Adam(naive, lr=0.1, betas=(b1, b2), eps=eps)
    for k in range(STEPS):
        t = k + 1  # torch's 1-based step count
        opt_theirs.param_groups[0]["eps"] = eps / math.sqrt(1 - b2**t)
        _step(opt_mine, mine, grads[k], LRS[k])
        _step(opt_theirs, theirs, grads[k], LRS[k])
        _step(opt_naive, naive, grads[k], LRS[k])
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # with the same eps every step they differ: the comparison above is not vacuous
    assert not torch.allclose(mine[0], naive[0], rtol=1e-6, atol=0)


@pytest.mark.parametrize(
    ("name", "ref", "kwargs"),
    [
        ("sgd", ref_sgd, {}),
        ("momentum", ref_momentum, {"momentum": 0.9}),
        ("nesterov", ref_nesterov, {"momentum": 0.9, "nesterov": True}),
    ],
)
def test_sgd_family_as_written_equals_torch_sgd(name: str, ref: Ref, kwargs: dict) -> None:
    """R11: the source's SGD, Momentum and Nesterov are torch.optim.SGD with dampening 0."""
    params, grads = _data(3)
    tp = _torch_params(params)
    opt = torch.optim.SGD(tp, lr=LRS[0], dampening=0.0, **kwargs)
    for t in range(STEPS):
        _step(opt, tp, grads[t], LRS[t])
    expected = _run_reference(ref, {"momentum": kwargs.get("momentum", 0.0)}, seed=3)
    for got, want in zip(tp, expected, strict=True):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-12, atol=1e-12)


def test_playbook_nadam_is_not_torch_nadam() -> None:
    """R11: torch's NAdam decays its momentum on a schedule; the source keeps beta1."""
    params, grads = _data(4)
    a, b = _torch_params(params), _torch_params(params)
    oa = PlaybookNAdam(a, lr=0.1)
    ob = torch.optim.NAdam(b, lr=0.1)
    for t in range(STEPS):
        _step(oa, a, grads[t], 0.1)
        _step(ob, b, grads[t], 0.1)
    assert not torch.allclose(a[0], b[0], rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_round_trip_continues_identically(name: str) -> None:
    hp = CASES[name][0]
    params, grads = _data(5)
    spec = OptimizerSpec(name=name, lr=LRS[0], **hp)
    # float32, as a model's weights are (torch's load_state_dict casts NAdam's float32
    # mu_product to the params' dtype, so float64 params would not resume bit for bit)
    straight = _torch_params(params, torch.float32)
    opt = build_optimizer(straight, spec)
    for t in range(STEPS):
        _step(opt, straight, grads[t], LRS[t])

    first = _torch_params(params, torch.float32)
    opt1 = build_optimizer(first, spec)
    half = STEPS // 2
    for t in range(half):
        _step(opt1, first, grads[t], LRS[t])
    buf = io.BytesIO()  # as a checkpoint would: through bytes, nothing shared
    torch.save({"params": [p.detach() for p in first], "opt": opt1.state_dict()}, buf)
    del opt1, first
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    resumed = [p.clone().requires_grad_(True) for p in ckpt["params"]]
    opt2 = build_optimizer(resumed, OptimizerSpec(name=name, lr=123.0, **hp))
    opt2.load_state_dict(ckpt["opt"])
    for t in range(half, STEPS):
        _step(opt2, resumed, grads[t], LRS[t])
    for a, b in zip(straight, resumed, strict=True):
        assert torch.equal(a, b)


def test_params_without_grad_are_skipped_and_groups_work() -> None:
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = PlaybookAdam([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.0}])
    a.grad = torch.ones(3)
    opt.step()
    assert torch.all(a < 1) and torch.equal(b, torch.ones(2))
    assert b not in opt.state


def test_float32_params_and_closure() -> None:
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = PlaybookRMSProp([w], lr=0.01)

    def closure() -> float:
        loss = (w**2).sum()
        loss.backward()
        return float(loss.detach())

    loss = opt.step(closure)
    assert loss == pytest.approx(5.0)
    assert w.dtype == torch.float32 and torch.all(w.abs() < torch.tensor([1.0, 2.0]))


def test_build_optimizer_rejects_unknown_name() -> None:
    with pytest.raises(SpecError, match=r"optimizer\.name"):
        build_optimizer([torch.zeros(1, requires_grad=True)], OptimizerSpec(name="adamax"))


def test_bad_hyperparameters_raise() -> None:
    p = [torch.zeros(1, requires_grad=True)]
    with pytest.raises(ValueError, match="beta1"):
        PlaybookAdam(p, betas=(1.0, 0.999))
    with pytest.raises(ValueError, match="rho"):
        PlaybookRMSProp(p, rho=-0.1)
