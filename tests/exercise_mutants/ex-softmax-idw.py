"""Wrong answers to ex-softmax-idw, chapter 2: From I-D-DW to attention without keys (see README.md)."""

# %% mutant: identity
# returns the input: passes a check on a constant map only
def normalised_idw(idw, x):
    return x

# %% mutant: box-filter
# a plain 3x3 mean, normalised but not generated from the input
def normalised_idw(idw, x):
    box = torch.full((1, 1, 9, 1, 1), 1 / 9, dtype=x.dtype)
    return local_aggregate(x, box, 3)

# %% mutant: softmax-over-groups
# the softmax runs over the groups (dim 1) instead of the offsets
def normalised_idw(idw, x):
    return local_aggregate(x, idw.aggregation_weights(x).softmax(dim=1), idw.kernel_size)

# %% mutant: no-softmax
# the layer itself, unnormalised
def normalised_idw(idw, x):
    return idw(x)

# %% mutant: window-of-three
# the softmax right, but the window hard-coded to 3×3, not the layer's kernel_size
def normalised_idw(idw, x):
    return local_aggregate(x, idw.aggregation_weights(x).softmax(dim=2), 3)
