"""Wrong answers to ex-gf-params, chapter 7: The size of a global filter (see README.md)."""

# %% mutant: full-spectrum
# counts all H·W frequencies, forgetting that a real map's spectrum is symmetric
def global_filter_params(C, H, W):
    return C * H * W * 2

# %% mutant: real-only
# forgets the imaginary parts
def global_filter_params(C, H, W):
    return C * H * (W // 2 + 1)

# %% mutant: half
# keeps W // 2 columns, one short
def global_filter_params(C, H, W):
    return C * H * (W // 2) * 2
