"""Against timm, where timm has the same layer: copy timm's weights into mixlib's module and
compare outputs in float64 (tolerance 1e-10). timm is a test-only dependency."""
import pytest
import torch

timm = pytest.importorskip("timm")
from timm.models import maxxvit, metaformer, swin_transformer  # noqa: E402

from mixlib import mixers  # noqa: E402

TOL = 1e-10


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


@pytest.mark.parametrize("shift", [0, 3])
def test_swin_window_attention_matches_timm(shift):
    torch.manual_seed(0)
    C, heads, M, H = 64, 2, 7, 14
    theirs = swin_transformer.SwinTransformerBlock(C, (H, H), num_heads=heads, window_size=M,
                                                   shift_size=shift).double().eval()
    ours = mixers.build("window_attention", C, num_heads=heads, window_size=M, shift_size=shift)
    ours = ours.double().eval()
    attn = theirs.attn
    ours.qkv.load_state_dict(attn.qkv.state_dict())
    ours.proj.load_state_dict(attn.proj.state_dict())
    with torch.no_grad():
        ours.relative_position_bias_table.copy_(attn.relative_position_bias_table)
    x = rand(2, C, H, H)
    expected = theirs._attn(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # timm is (B, H, W, C)
    # timm masks with -100 where mixlib uses -inf: a difference of order e^-100
    assert torch.allclose(ours(x), expected, atol=TOL, rtol=0)


def test_coatnet_relative_attention_matches_timm():
    torch.manual_seed(0)
    C, H, W = 64, 7, 7
    import functools
    rel_pos = functools.partial(maxxvit.RelPosBias, window_size=(H, W))
    theirs = maxxvit.Attention2d(C, C, dim_head=32, rel_pos_cls=rel_pos).double().eval()
    ours = mixers.build("relative_attention", C, size=(H, W)).double().eval()
    heads, d = C // 32, 32
    # timm lays the qkv channels out (head, qkv, d) (head_first); mixlib as (qkv, head, d)
    order = torch.arange(3 * C).view(heads, 3, d).permute(1, 0, 2).reshape(-1)
    with torch.no_grad():
        ours.qkv.weight.copy_(theirs.qkv.weight[order])
        ours.qkv.bias.copy_(theirs.qkv.bias[order])
        ours.relative_position_bias_table.copy_(theirs.rel_pos.relative_position_bias_table)
    ours.proj.load_state_dict(theirs.proj.state_dict())
    x = rand(2, C, H, W)
    assert torch.allclose(ours(x), theirs(x), atol=TOL, rtol=0)


def test_poolformer_pooling_matches_timm():
    theirs = metaformer.Pooling(pool_size=3)
    ours = mixers.build("pooling", 16)
    x = rand(2, 16, 9, 13)
    assert torch.allclose(ours(x), theirs(x), atol=TOL, rtol=0)
