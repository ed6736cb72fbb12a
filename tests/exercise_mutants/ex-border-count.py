"""Wrong answers to ex-border-count, chapter 1: How many neighbours a border pixel has (see README.md)."""

# %% mutant: no-border
# every pixel has k*k neighbours, as if the image went on forever
def neighbours_inside(i, j, H, W, k):
    return k * k

# %% mutant: off-by-one
# clips the window at H and W instead of H - 1 and W - 1 and forgets the + 1
def neighbours_inside(i, j, H, W, k):
    r = k // 2
    return (min(i + r, H) - max(i - r, 0)) * (min(j + r, W) - max(j - r, 0))

# %% mutant: rows-only
# clips the rows but counts all k columns
def neighbours_inside(i, j, H, W, k):
    r = k // 2
    return (min(i + r, H - 1) - max(i - r, 0) + 1) * k
