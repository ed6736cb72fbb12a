"""Wrong answers to ex-filter-sums, chapter 4: What a channel's filter sums to (see README.md)."""

# %% mutant: no-softmax-mass
# forgets the head weights' sum of 1
def filter_sums(layer):
    return layer.gamma * layer.ghost_add.sum(dim=1)

# %% mutant: no-gamma
# forgets γ
def filter_sums(layer):
    return 1 + layer.ghost_add.sum(dim=1)

# %% mutant: ones
# thinks the filters sum to one, like attention's weights
def filter_sums(layer):
    return torch.ones(layer.dim, dtype=torch.float64)
