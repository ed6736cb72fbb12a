"""Wrong answers to ex-ghost-params, chapter 4: What the ghost head costs (see README.md)."""

# %% mutant: one-tensor
# counts one of the two tensors
ghost_params = 96 * 7 * 7

# %% mutant: per-head
# one pair of tensors per head rather than per channel
ghost_params = 2 * 3 * 7 * 7
