"""Wrong answers to ex-mask-pairs, chapter 3: Counting what the shifted-window mask allows (see README.md)."""

# %% mutant: no-mask
# every query attends to every key of the window
def allowed_pairs(M, s):
    return M ** 4

# %% mutant: pixels-not-pairs
# adds up the regions' pixels instead of their pairs
def allowed_pairs(M, s):
    return (M - s) ** 2 + 2 * (M - s) * s + s ** 2

# %% mutant: two-regions
# counts only the two square regions and forgets the two rectangles
def allowed_pairs(M, s):
    return (M - s) ** 4 + s ** 4
