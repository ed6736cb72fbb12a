"""Wrong answers to ex-extent, chapter 5: The extent of the decomposition (see README.md)."""

# %% mutant: K
# the large kernel's own size K
def extent(K, d):
    return K

# %% mutant: no-dilation
# adds the two kernels as if the second were not dilated
def extent(K, d):
    return (2 * d - 1) + math.ceil(K / d) - 1

# %% mutant: floor
# rounds K / d down
def extent(K, d):
    return (2 * d - 1) + (K // d - 1) * d
