"""Wrong answers to ex-pooling, chapter 1: PoolFormer's mixer as aggregation (see README.md)."""

# %% mutant: count-include-pad
# divides by 9 everywhere, as count_include_pad=True would: wrong at the border
def pooling_weights(height, width):
    w = torch.full((9, height, width), 1 / 9, dtype=torch.float64)
    w[4] -= 1.0
    return w[None, None]

# %% mutant: mean-only
# the mean of the neighbours, without subtracting the pixel
def pooling_weights(height, width):
    inside = neighbour_mask(height, width, 3).double()
    return (inside / inside.sum(0))[None, None]

# %% mutant: first-offset
# subtracts the pixel at offset 0, the top-left neighbour, instead of the centre
def pooling_weights(height, width):
    inside = neighbour_mask(height, width, 3).double()
    w = inside / inside.sum(0)
    w[0] -= 1.0
    return w[None, None]
