"""Wrong answers to ex-offset-pairs, chapter 6: How often each offset is read (see README.md)."""

# %% mutant: signed
# H - a without the absolute value: too many pairs for a negative offset
def pairs_with_offset(H, W, a, b):
    return max(H - a, 0) * max(W - b, 0)

# %% mutant: unclamped
# no floor at zero: beyond the map both factors turn negative and their product positive
def pairs_with_offset(H, W, a, b):
    return (H - abs(a)) * (W - abs(b))

# %% mutant: added
# adds the two axes' counts instead of multiplying them
def pairs_with_offset(H, W, a, b):
    return max(H - abs(a), 0) + max(W - abs(b), 0)

# %% mutant: every-pixel
# every query has a key at every offset, as on a torus
def pairs_with_offset(H, W, a, b):
    return H * W if abs(a) < H and abs(b) < W else 0
