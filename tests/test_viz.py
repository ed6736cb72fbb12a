"""mixlib.viz: the mixing matrix is the mixer, and the plots draw without a display."""
import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from mixlib.ops import local_aggregate  # noqa: E402
from mixlib.viz import aggregation_matrix, plot_images, plot_matrices  # noqa: E402


def test_aggregation_matrix_reproduces_the_mixer():
    C, H, W, k = 4, 3, 5, 3
    w = torch.randn(1, 2, k * k, H, W, dtype=torch.float64)
    x = torch.randn(1, C, H, W, dtype=torch.float64)
    M = aggregation_matrix(w, k, C, H, W)
    assert M.shape == (C * H * W, C * H * W)
    assert torch.allclose(M @ x.flatten(), local_aggregate(x, w, k).flatten(), atol=1e-12, rtol=0)
    # no channel mixing: every off-diagonal channel block is zero
    blocks = M.view(C, H * W, C, H * W)
    for a in range(C):
        for b in range(C):
            if a != b:
                assert not blocks[a, :, b].any()


def test_plots_return_figures():
    fig = plot_matrices({"a": torch.eye(6), "b": -torch.eye(6)}, block=3)
    assert len(fig.axes) == 2
    fig = plot_images(torch.randint(0, 255, (3, 3, 8, 8), dtype=torch.uint8), ["x", "y", "z"], ncols=2)
    assert len(fig.axes) == 4
