"""Wrong answers to ex-distinct-windows, chapter 3: How many different windows (see README.md)."""

# %% mutant: one-per-pixel
# 12: one window per pixel, as without clamping
distinct_windows = 12

# %% mutant: L-minus-k
# 5: L - k, one short
distinct_windows = 12 - 7

# %% mutant: kernel
# 7: the kernel size
distinct_windows = 7
