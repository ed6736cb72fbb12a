"""Figures the chapters share: mixing matrices, kernels, images.

Plotting functions take tensors and return the matplotlib Figure; they never call ``show``.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from .ops import local_aggregate

__all__ = ["aggregation_matrix", "plot_matrices", "plot_images"]


def aggregation_matrix(w: torch.Tensor, kernel_size: int, channels: int, height: int, width: int,
                       dilation: int = 1) -> torch.Tensor:
    """The (C·H·W, C·H·W) matrix M with y = M x for y = local_aggregate(x, w).

    Rows and columns are ordered channel-major, (c, row, col), so a mixer that never mixes
    channels is block diagonal, one H·W block per channel. w must have batch size 1.
    """
    if w.shape[0] != 1:
        raise ValueError(f"w must have batch size 1 to draw one matrix, got w.shape={tuple(w.shape)}")
    n = channels * height * width
    basis = torch.eye(n, dtype=w.dtype, device=w.device).view(n, channels, height, width)
    with torch.no_grad():
        columns = local_aggregate(basis, w, kernel_size, dilation)  # column j = M e_j
    return columns.reshape(n, n).T


def plot_matrices(matrices: dict[str, torch.Tensor], *, block: int | None = None,
                  title: str | None = None, size: float = 2.6):
    """Draw matrices side by side with one symmetric colour scale each (red +, blue -).

    `block` draws thin lines every `block` rows and columns (e.g. the H·W of one channel).
    """
    fig, axes = plt.subplots(1, len(matrices), figsize=(size * len(matrices), size + 0.4),
                             squeeze=False)
    for ax, (name, m) in zip(axes[0], matrices.items()):
        m = m.detach().cpu().float()
        scale = float(m.abs().max()) or 1.0
        ax.imshow(m.numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
        if block:
            for edge in range(block, m.shape[0], block):
                ax.axhline(edge - 0.5, color="0.75", lw=0.5)
                ax.axvline(edge - 0.5, color="0.75", lw=0.5)
        nonzero = int((m != 0).sum())
        ax.set_title(f"{name}\n{nonzero} non-zero", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_images(images: torch.Tensor, titles: list[str] | None = None, *, ncols: int | None = None,
                size: float = 1.8, cmap: str | None = None):
    """Draw (N, 3, H, W) or (N, H, W) images: uint8 and floats in [0, 1] as they are, other
    floats rescaled to [0, 1] image by image."""
    images = images.detach().cpu()
    n = images.shape[0]
    ncols = ncols or n
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for idx, ax in enumerate(axes.flat):
        ax.axis("off")
        if idx >= n:
            continue
        image = images[idx]
        if image.dim() == 3:
            image = image.permute(1, 2, 0)  # (3, H, W) -> (H, W, 3) for imshow
        if image.dtype != torch.uint8:
            image = image.float()
            if image.min() < 0 or image.max() > 1:  # values in [0, 1] are shown as they are
                image = (image - image.min()) / (image.max() - image.min() + 1e-12)
        ax.imshow(image.numpy(), cmap=cmap, interpolation="nearest")
        if titles:
            ax.set_title(titles[idx], fontsize=9)
    fig.tight_layout()
    return fig
