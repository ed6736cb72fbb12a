"""Wrong answers to ex-table-size, chapter 6: The size of a global bias table (see README.md)."""

# %% mutant: pixels
# H·W: one entry per pixel
def table_rows(H, W):
    return H * W

# %% mutant: pairs
# (H·W)^2: one entry per pair of pixels, no sharing at all
def table_rows(H, W):
    return (H * W) ** 2

# %% mutant: doubled
# 2H·2W: one offset too many per axis
def table_rows(H, W):
    return 2 * H * 2 * W
