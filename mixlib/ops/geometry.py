"""Geometry of the window: where the K = k*k neighbours of a pixel lie, under each border rule.

The border rule lives in one function, ``axis_neighbours``: every backend (reference, lean,
dense, Triton) and the attention mixers read neighbour positions from it, and its one size check
(``check_clamp_fits``) is the only place that decides whether a clamped window fits.
Both rules place a pixel's neighbours along an axis at ``start + t·d`` for t = 0..k-1 (an
arithmetic sequence of step d); the Triton kernels rely on that to invert the rule.
"""
from __future__ import annotations

import torch

BORDERS = ("zeros", "clamp")


def check_window(kernel_size, dilation) -> None:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 \
            or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive int, got {kernel_size!r}")
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"dilation must be a positive int, got {dilation!r}")


def check_size(name: str, value) -> None:
    """A map's side: a non-negative int (0 is an empty axis)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def check_border(border: str) -> None:
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")


def check_clamp_fits(length: int, kernel_size: int, dilation: int) -> None:
    """border='clamp' needs k pixels in each of the d interleaved sub-axes of an axis.

    A plain int comparison, not a tensor reduction: no host sync on a GPU and no graph break
    under torch.compile. The shortest sub-axis has length // d pixels (when length >= d), so
    it holds k pixels iff length >= k·d; k = 1 fits any axis (each pixel is its own window).
    """
    if kernel_size > 1 and length < kernel_size * dilation:
        raise ValueError(f"border='clamp' needs every axis to hold kernel_size * dilation = "
                         f"{kernel_size * dilation} pixels, got an axis of length {length}")


def neighbour_offsets(kernel_size: int, dilation: int = 1) -> list[tuple[int, int]]:
    """The K = k*k offsets (dy, dx) of a dilated k×k window, row-major, centre at K // 2."""
    check_window(kernel_size, dilation)
    r = kernel_size // 2
    return [(dy * dilation, dx * dilation) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]


def axis_neighbours(length: int, kernel_size: int, dilation: int = 1, border: str = "zeros",
                    device: torch.device | str | None = None) -> torch.Tensor:
    """(k, L) long: the position of the t-th neighbour of every i along an axis of length L.

    "zeros": i + (t - r)·d, which may lie outside [0, L) (that neighbour reads a zero).
    "clamp": neighbourhood attention's rule (NATTEN): the window of a pixel near the border
    shifts inward instead of reaching outside, so every pixel has exactly k neighbours. With
    dilation d the axis splits into d interleaved sub-axes (i mod d) and the rule applies
    inside each of them.
    """
    check_size("length", length)
    check_window(kernel_size, dilation)
    check_border(border)
    r = kernel_size // 2
    i = torch.arange(length, device=device)
    t = torch.arange(kernel_size, device=device)[:, None]
    if border == "zeros":
        return i[None, :] + (t - r) * dilation
    check_clamp_fits(length, kernel_size, dilation)
    phase, index = i % dilation, i // dilation  # which sub-axis, and where in it
    sub_length = (length - phase + dilation - 1) // dilation  # ceil((L - phase) / d)
    start = (index - r).clamp(min=0)
    start = start + (index + r >= sub_length) * (sub_length - index - r - 1)
    return (start[None, :] + t) * dilation + phase[None, :]


def window_reach(kernel_size: int, border: str) -> int:
    """How many steps d a neighbour can lie from its pixel along an axis: r for "zeros", 2r for
    "clamp" (a border window shifts inward by up to r). The Triton adjoint kernel searches
    this far for the pixels that read a given one."""
    return (kernel_size // 2) * (2 if border == "clamp" else 1)


def clamped_neighbours(length: int, kernel_size: int, dilation: int = 1,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """(k, L) long: ``axis_neighbours`` under border="clamp"."""
    return axis_neighbours(length, kernel_size, dilation, "clamp", device)


def window_positions(height: int, width: int, kernel_size: int, dilation: int = 1,
                     border: str = "zeros", device: torch.device | str | None = None):
    """(rows, cols), each (K, H, W) long: where neighbour o of pixel (i, j) lies.

    With border="zeros" a position may fall outside the image (that neighbour reads a zero);
    with border="clamp" it never does. Relative positions (rows - i) // dilation index
    relative position bias tables.
    """
    check_size("height", height)
    check_size("width", width)
    k, K = kernel_size, kernel_size ** 2
    row_of = axis_neighbours(height, k, dilation, border, device)  # (k, H)
    col_of = axis_neighbours(width, k, dilation, border, device)  # (k, W)
    rows = row_of[:, None, :, None].expand(k, k, height, width).reshape(K, height, width)
    cols = col_of[None, :, None, :].expand(k, k, height, width).reshape(K, height, width)
    return rows, cols


def inside(rows: torch.Tensor, cols: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Which of the positions (rows, cols) lie inside an H×W map."""
    return (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)


def neighbour_mask(height: int, width: int, kernel_size: int, dilation: int = 1,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """(K, H, W) bool: True where neighbour i + d·o of pixel i lies inside the image."""
    rows, cols = window_positions(height, width, kernel_size, dilation, "zeros", device)
    return inside(rows, cols, height, width)
