"""Optimizers for the runner: torch.optim's, and the playbook's exact update rules (R11).

``build_optimizer(params, spec.optimizer)`` makes the optimizer a spec names:

===================  ====================================================================
name                 optimizer
===================  ====================================================================
sgd                  ``torch.optim.SGD`` (no momentum)
momentum             ``torch.optim.SGD(momentum=gamma, dampening=0)``
nesterov             ``torch.optim.SGD(momentum=gamma, dampening=0, nesterov=True)``
adam / adamw         ``torch.optim.Adam`` / ``torch.optim.AdamW``
rmsprop              ``torch.optim.RMSprop`` (``rho`` is torch's ``alpha``)
nadam                ``torch.optim.NAdam`` (its momentum decays on a schedule)
playbook_rmsprop     :class:`PlaybookRMSProp`
playbook_adam        :class:`PlaybookAdam`
playbook_nadam       :class:`PlaybookNAdam`
===================  ====================================================================

Defaults for hyperparameters a spec leaves out are in ``runner.spec.OPTIMIZER_PARAMS``.

The playbook optimizers implement the source document's rules (section
"所有流行的优化算法的更新规则是什么"), with ``t`` counting the updates already made, ``g`` the
gradient and ``eta_t`` / ``alpha_t`` the group's ``lr`` at that step (the training loop sets
``param_groups[i]["lr"]`` before each step):

RMSProp (R11: ``v`` starts at 1, epsilon inside the square root, the rate folded into the
momentum buffer, TensorFlow's form)::

    v_0 = 1, m_0 = 0
    v_{t+1} = rho v_t + (1 - rho) g^2
    m_{t+1} = gamma m_t + eta_t / sqrt(v_{t+1} + eps) * g
    theta_{t+1} = theta_t - m_{t+1}

Adam (R11: epsilon added to sqrt(v) before the bias correction; equal to ``torch.optim.Adam``
with ``eps_t = eps / sqrt(1 - beta2^t)``)::

    m_{t+1} = beta1 m_t + (1 - beta1) g
    v_{t+1} = beta2 v_t + (1 - beta2) g^2
    b_{t+1} = sqrt(1 - beta2^(t+1)) / (1 - beta1^(t+1))
    theta_{t+1} = theta_t - alpha_t m_{t+1} / (sqrt(v_{t+1}) + eps) b_{t+1}

NAdam (R11: beta1 constant, unlike ``torch.optim.NAdam``): as Adam, with the numerator
``beta1 m_{t+1} + (1 - beta1) g``.

``weight_decay`` (not in the source, default 0) adds ``weight_decay * theta`` to the gradient.
The state (``step`` as a Python int, the moment buffers as tensors) goes through
``state_dict()`` / ``load_state_dict()``, so a resumed run continues the same updates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from runner.spec import OPTIMIZERS, OptimizerSpec, SpecError, optimizer_hparams

__all__ = ["PlaybookAdam", "PlaybookNAdam", "PlaybookRMSProp", "build_optimizer"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]


def build_optimizer(params: Params, opt: OptimizerSpec) -> torch.optim.Optimizer:
    """The optimizer ``opt`` names over ``params`` (tensors or param-group dicts). R11."""
    if opt.name not in OPTIMIZERS:
        raise SpecError(f"optimizer.name must be one of {', '.join(OPTIMIZERS)}", "optimizer.name")
    h = optimizer_hparams(opt)
    lr, wd = h["lr"], h["weight_decay"]
    name = opt.name
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=wd)
    if name in ("momentum", "nesterov"):  # R11: equal to the source's rules with dampening 0
        return torch.optim.SGD(
            params,
            lr=lr,
            momentum=h["momentum"],
            dampening=0.0,
            nesterov=name == "nesterov",
            weight_decay=wd,
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=lr, alpha=h["rho"], eps=h["eps"], momentum=h["momentum"], weight_decay=wd
        )
    if name == "playbook_rmsprop":
        return PlaybookRMSProp(
            params, lr=lr, rho=h["rho"], momentum=h["momentum"], eps=h["eps"], weight_decay=wd
        )
    betas = (h["beta1"], h["beta2"])
    classes: dict[str, type[torch.optim.Optimizer]] = {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "nadam": torch.optim.NAdam,
        "playbook_adam": PlaybookAdam,
        "playbook_nadam": PlaybookNAdam,
    }
    return classes[name](params, lr=lr, betas=betas, eps=h["eps"], weight_decay=wd)


def _check(name: str, value: float, lo: float, hi: float | None = None) -> None:
    if not (value >= lo and (hi is None or value < hi)):
        bounds = f"[{lo}, {hi})" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be {bounds}, not {value}")


def _grads(group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
    """The group's params that have a gradient, and their gradients (with L2 decay added)."""
    params: list[Tensor] = []
    grads: list[Tensor] = []
    for p in group["params"]:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            raise RuntimeError("playbook optimizers do not support sparse gradients")
        params.append(p)
        grads.append(p.grad)
    wd = group["weight_decay"]
    if wd != 0 and params:
        grads = torch._foreach_add(grads, params, alpha=wd)
    return params, grads


class _PlaybookOptimizer(torch.optim.Optimizer):
    """The step shared by the playbook optimizers: the closure, then each group's params that
    have a gradient (L2 decay added, see :func:`_grads`) go to :meth:`_update`."""

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads = _grads(group)
            if params:
                self._update(group, params, grads)
        return loss

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        raise NotImplementedError


class PlaybookRMSProp(_PlaybookOptimizer):
    """RMSProp exactly as the source document writes it (R11); see the module docstring.

    Defaults (TensorFlow's, whose form this is): rho 0.9, momentum (gamma) 0, eps 1e-7.
    """

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        rho: float = 0.9,
        momentum: float = 0.0,
        eps: float = 1e-7,
        weight_decay: float = 0.0,
    ) -> None:
        _check("lr", lr, 0.0)
        _check("rho", rho, 0.0, 1.0)
        _check("momentum", momentum, 0.0, 1.0)
        _check("eps", eps, 0.0)
        _check("weight_decay", weight_decay, 0.0)
        defaults = {
            "lr": lr,
            "rho": rho,
            "momentum": momentum,
            "eps": eps,
            "weight_decay": weight_decay,
        }
        super().__init__(params, defaults)

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        vs: list[Tensor] = []
        ms: list[Tensor] = []
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["square_avg"] = torch.ones_like(p, memory_format=torch.preserve_format)
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            vs.append(state["square_avg"])
            ms.append(state["momentum_buffer"])
        rho, gamma = group["rho"], group["momentum"]
        lr, eps = float(group["lr"]), group["eps"]
        # R11: v_{t+1} = rho v_t + (1 - rho) g^2  (v_0 = 1)
        torch._foreach_mul_(vs, rho)
        torch._foreach_addcmul_(vs, grads, grads, value=1.0 - rho)
        # R11: m_{t+1} = gamma m_t + eta_t / sqrt(v_{t+1} + eps) g  (eps inside the root)
        denom = torch._foreach_add(vs, eps)
        torch._foreach_sqrt_(denom)
        torch._foreach_mul_(ms, gamma)
        torch._foreach_addcdiv_(ms, grads, denom, value=lr)
        # R11: theta_{t+1} = theta_t - m_{t+1}
        torch._foreach_sub_(params, ms)


class _PlaybookAdamBase(_PlaybookOptimizer):
    """Shared state and moments of the source document's Adam and NAdam (R11)."""

    nesterov: bool = False

    def __init__(
        self,
        params: Params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        _check("lr", lr, 0.0)
        _check("beta1", betas[0], 0.0, 1.0)
        _check("beta2", betas[1], 0.0, 1.0)
        _check("eps", eps, 0.0)
        _check("weight_decay", weight_decay, 0.0)
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)

    def _update(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        beta1, beta2 = group["betas"]
        lr, eps = float(group["lr"]), group["eps"]
        ms: list[Tensor] = []
        vs: list[Tensor] = []
        scales: list[float] = []
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["step"] += 1
            t1 = state["step"]  # t + 1 in the source's notation
            # R11: b_{t+1} = sqrt(1 - beta2^(t+1)) / (1 - beta1^(t+1))
            b = math.sqrt(1.0 - beta2**t1) / (1.0 - beta1**t1)
            scales.append(-lr * b)
            ms.append(state["exp_avg"])
            vs.append(state["exp_avg_sq"])
        # R11: m_{t+1} = beta1 m_t + (1 - beta1) g;  v_{t+1} = beta2 v_t + (1 - beta2) g^2
        torch._foreach_mul_(ms, beta1)
        torch._foreach_add_(ms, grads, alpha=1.0 - beta1)
        torch._foreach_mul_(vs, beta2)
        torch._foreach_addcmul_(vs, grads, grads, value=1.0 - beta2)
        # R11: eps is added to sqrt(v) before the bias correction b is applied
        denom = torch._foreach_sqrt(vs)
        torch._foreach_add_(denom, eps)
        if self.nesterov:
            # R11 (NAdam, beta1 constant): numerator beta1 m_{t+1} + (1 - beta1) g
            num = torch._foreach_mul(ms, beta1)
            torch._foreach_add_(num, grads, alpha=1.0 - beta1)
        else:
            num = ms
        # theta_{t+1} = theta_t - alpha_t * num / (sqrt(v_{t+1}) + eps) * b_{t+1}
        torch._foreach_addcdiv_(params, num, denom, scales)


class PlaybookAdam(_PlaybookAdamBase):
    """Adam exactly as the source document writes it (R11); see the module docstring.

    Equals ``torch.optim.Adam`` run with ``eps_t = eps / sqrt(1 - beta2^t)`` at update t
    (1-based). Defaults: betas (0.9, 0.999), eps 1e-8.
    """

    nesterov = False


class PlaybookNAdam(_PlaybookAdamBase):
    """NAdam exactly as the source document writes it (R11): beta1 stays constant.

    ``torch.optim.NAdam`` cannot reproduce it (its momentum coefficient follows a schedule).
    Defaults: betas (0.9, 0.999), eps 1e-8.
    """

    nesterov = True
