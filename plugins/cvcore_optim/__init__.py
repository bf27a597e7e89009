"""Built-in optimizers and learning-rate schedulers. Light module: torch is imported inside factories.

Schedulers are torch's chainable ones, so `--scheduler warmup --scheduler multistep` multiplies
a per-iteration linear warm-up with per-epoch steps, as in the CIFAR tutorial's WarmUpLR recipe.
"""

from __future__ import annotations

from typing import Annotated

import cvcore
from cvcore import Between


@cvcore.hookimpl
def register_optimizers(register):
    register("sgd", sgd)
    register("adam", adam)
    register("adamw", adamw)
    register("rmsprop", rmsprop)


@cvcore.hookimpl
def register_schedulers(register):
    register("warmup", warmup, interval="step")
    register("step", step, interval="epoch")
    register("multistep", multistep, interval="epoch")
    register("cosine", cosine, interval="epoch")
    register("exponential", exponential, interval="epoch")
    register("constant", constant, interval="epoch")


def sgd(params, *, lr: float = 0.1, momentum: float = 0.0, nesterov: bool = False,
        weight_decay: float = 0.0, dampening: float = 0.0):
    """Stochastic gradient descent with optional (Nesterov) momentum and weight decay.

    :param lr: learning rate.
    :param momentum: momentum factor.
    :param nesterov: use Nesterov momentum (needs momentum > 0).
    :param weight_decay: L2 penalty.
    :param dampening: dampening of the momentum.
    """
    import torch

    from cvcore import OptionError

    if nesterov and (momentum <= 0 or dampening != 0):
        raise OptionError("sgd: nesterov=true needs momentum > 0 and dampening = 0.")
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov,
                           weight_decay=weight_decay, dampening=dampening)


def adam(params, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
         weight_decay: float = 0.0, eps: float = 1e-8):
    """Adam.

    :param lr: learning rate.
    :param betas: coefficients of the running averages of the gradient and its square.
    :param weight_decay: L2 penalty added to the gradient.
    :param eps: term added to the denominator for numerical stability.
    """
    import torch

    return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps)


def adamw(params, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
          weight_decay: float = 0.01, eps: float = 1e-8):
    """AdamW: Adam with decoupled weight decay.

    :param lr: learning rate.
    :param betas: coefficients of the running averages of the gradient and its square.
    :param weight_decay: decoupled weight decay.
    :param eps: term added to the denominator for numerical stability.
    """
    import torch

    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, eps=eps)


def rmsprop(params, *, lr: float = 1e-2, alpha: float = 0.99, momentum: float = 0.0,
            weight_decay: float = 0.0, eps: float = 1e-8):
    """RMSprop.

    :param lr: learning rate.
    :param alpha: smoothing constant of the squared-gradient average.
    :param momentum: momentum factor.
    :param weight_decay: L2 penalty.
    :param eps: term added to the denominator for numerical stability.
    """
    import torch

    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, momentum=momentum,
                               weight_decay=weight_decay, eps=eps)


def warmup(optimizer, *, epochs: Annotated[float, Between(0.01)] = 1.0,
           iterations: Annotated[int, Between(1)] | None = None, steps_per_epoch: int = 1):
    """Linear warm-up per iteration from lr/N to lr over N iterations (the tutorial's WarmUpLR).

    :param epochs: warm-up length in epochs (may be fractional); ignored if iterations is set.
    :param iterations: warm-up length in iterations.
    :param steps_per_epoch: optimizer steps per epoch (filled in by the Trainer).
    """
    import torch

    total = iterations if iterations is not None else max(1, round(epochs * steps_per_epoch))
    return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / total, total_iters=total - 1 or 1)


def step(optimizer, *, step_size: Annotated[int, Between(1)] = 30, gamma: Annotated[float, Between(0.0)] = 0.1):
    """Multiply the learning rate by gamma every step_size epochs (x0.1 every 30 by default).

    :param step_size: epochs between decays.
    :param gamma: decay factor.
    """
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)


def multistep(optimizer, *, milestones: list[int] = [80, 120], gamma: float = 0.1):  # noqa: B006
    """Multiply the learning rate by gamma at each milestone epoch.

    :param milestones: epochs at which to decay, in increasing order.
    :param gamma: decay factor.
    """
    import torch

    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)


def cosine(optimizer, *, total_epochs: int = 100, min_lr: float = 0.0):
    """Cosine annealing from the initial learning rate to min_lr over the run.

    :param total_epochs: length of the run in epochs (filled in by the Trainer).
    :param min_lr: learning rate at the end.
    """
    import torch

    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_epochs, eta_min=min_lr)


def exponential(optimizer, *, gamma: float = 0.95):
    """Multiply the learning rate by gamma after every epoch.

    :param gamma: decay factor per epoch.
    """
    import torch

    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)


def constant(optimizer):
    """Keep the learning rate constant (useful as an explicit choice in configs)."""
    import torch

    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
