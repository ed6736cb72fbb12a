"""Wrong answers to ex-ghost, chapter 4: Turning the ghost head off (see README.md)."""

# %% mutant: repeat
# tiles the heads (h0, h1, h0, h1, ...) with repeat instead of repeat_interleave
def ghostless_filters(layer, x):
    q, k, _ = torch.split(layer.pre_proj(x), (layer.dim_qk, layer.dim_qk, layer.dim), dim=1)
    return layer.head_weights(q, k).repeat(1, layer.dim // layer.num_heads, 1, 1, 1)

# %% mutant: logits
# the generator's logits, without the softmax
def ghostless_filters(layer, x):
    q, k, _ = torch.split(layer.pre_proj(x), (layer.dim_qk, layer.dim_qk, layer.dim), dim=1)
    B, _, H, W = q.shape
    logits = layer.generator(q * k * layer.scale).view(B, layer.num_heads, -1, H, W)
    return logits.repeat_interleave(layer.dim // layer.num_heads, dim=1)

# %% mutant: queries-twice
# feeds q ⊙ q instead of q ⊙ k
def ghostless_filters(layer, x):
    q, k, _ = torch.split(layer.pre_proj(x), (layer.dim_qk, layer.dim_qk, layer.dim), dim=1)
    return layer.head_weights(q, q).repeat_interleave(layer.dim // layer.num_heads, dim=1)

# %% mutant: layer-filters
# returns the layer's own filters: equal when γ = 0, but it shows nothing and keeps the adder
def ghostless_filters(layer, x):
    return layer.aggregation_weights(x)
