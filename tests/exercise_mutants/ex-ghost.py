"""Wrong answers to ex-ghost, chapter 4: Recovering the heads (see README.md)."""

# %% mutant: strided
# takes every h-th channel as a head's (h0, h1, h0, h1, ...), as repeat would lay them out
def head_attention(filters, layer):
    shared = (filters - layer.gamma * layer.ghost_add[None, :, :, None, None]) \
        / layer.ghost_mul[None, :, :, None, None]
    B, C, K, H, W = shared.shape
    return shared.view(B, C // layer.num_heads, layer.num_heads, K, H, W)[:, 0]

# %% mutant: keeps-adder
# divides by the multiplier but leaves the static adder in
def head_attention(filters, layer):
    shared = filters / layer.ghost_mul[None, :, :, None, None]
    B, C, K, H, W = shared.shape
    return shared.view(B, layer.num_heads, C // layer.num_heads, K, H, W)[:, :, 0]

# %% mutant: no-gamma
# subtracts ghost_add without its scale γ
def head_attention(filters, layer):
    shared = (filters - layer.ghost_add[None, :, :, None, None]) \
        / layer.ghost_mul[None, :, :, None, None]
    B, C, K, H, W = shared.shape
    return shared.view(B, layer.num_heads, C // layer.num_heads, K, H, W)[:, :, 0]

# %% mutant: mean-filters
# averages a head's filters, multipliers and adders included
def head_attention(filters, layer):
    B, C, K, H, W = filters.shape
    return filters.view(B, layer.num_heads, C // layer.num_heads, K, H, W).mean(2)
