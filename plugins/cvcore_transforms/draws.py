"""Random draws for whole batches on the batch's device, all from the one generator a run saves."""

from __future__ import annotations

import torch


def uniform(low: float, high: float, count: int, like: torch.Tensor, generator, tries: int | None = None) -> torch.Tensor:
    """``count`` (or ``count`` x ``tries``) values uniform in [low, high), on ``like``'s device."""
    shape = (count,) if tries is None else (count, tries)
    return low + (high - low) * torch.rand(shape, device=like.device, generator=generator)


def chance(p: float, count: int, like: torch.Tensor, generator) -> torch.Tensor:
    """A bool per image: True with probability ``p``."""
    return torch.rand(count, device=like.device, generator=generator) < p


def first_true(accepted: torch.Tensor, values: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Per row, the value at the first accepted try, else ``fallback`` (rejection sampling in a batch)."""
    index = accepted.int().argmax(1, keepdim=True)
    return torch.where(accepted.any(1), values.gather(1, index).squeeze(1), fallback)


def log_gamma(shape: float, count: int, like: torch.Tensor, generator, tries: int = 8) -> torch.Tensor:
    """log of Gamma(shape, 1) samples (Marsaglia and Tsang, 2000): each try is accepted with
    probability above 0.95, so eight tries leave a row without one about once in 10^10 draws. In
    logs, since for a small shape the samples themselves underflow float32 (Gamma(0.02) is below
    1e-38 about a fifth of the time)."""
    boosted = shape + 1 if shape < 1 else shape
    d = boosted - 1 / 3
    c = 1 / (9 * d) ** 0.5
    x = torch.randn((count, tries), device=like.device, generator=generator)
    u = uniform(0, 1, count, like, generator, tries)
    v = (1 + c * x) ** 3
    accepted = (v > 0) & (u.clamp_min(1e-12).log() < 0.5 * x**2 + d - d * v + d * v.clamp_min(1e-12).log())
    sample = (d * first_true(accepted, v, torch.ones(count, device=like.device))).log()
    if shape < 1:  # Gamma(a) = Gamma(a + 1) * U^(1/a)
        sample = sample + uniform(0, 1, count, like, generator).clamp_min(1e-12).log() / shape
    return sample


def beta(alpha: float, count: int, like: torch.Tensor, generator) -> torch.Tensor:
    """Beta(alpha, alpha) samples, one per image: X / (X + Y) = sigmoid(log X - log Y)."""
    return torch.sigmoid(log_gamma(alpha, count, like, generator) - log_gamma(alpha, count, like, generator))


def boxes(height: int, width: int, area: torch.Tensor, log_ratio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Box heights and widths (rounded) for areas in pixels and log aspect ratios (width / height)."""
    ratio = log_ratio.exp()
    return (area / ratio).sqrt().round(), (area * ratio).sqrt().round()


def offsets(space: torch.Tensor, like: torch.Tensor, generator) -> torch.Tensor:
    """An integer offset per image, uniform in [0, space]."""
    return (torch.rand(space.shape, device=like.device, generator=generator) * (space + 1)).floor().clamp(max=space)


def inside(height: int, width: int, top, left, box_height, box_width) -> torch.Tensor:
    """(N, 1, H, W) bool: which pixels of each image lie in its box."""
    device = top.device
    rows = torch.arange(height, device=device).view(1, -1, 1)
    cols = torch.arange(width, device=device).view(1, 1, -1)
    top, left = top.view(-1, 1, 1), left.view(-1, 1, 1)
    box_height, box_width = box_height.view(-1, 1, 1), box_width.view(-1, 1, 1)
    return ((rows >= top) & (rows < top + box_height) & (cols >= left) & (cols < left + box_width)).unsqueeze(1)
