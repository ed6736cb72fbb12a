"""Wrong answers to ex-best-dilation, chapter 5: The cheapest dilation (see README.md)."""

# %% mutant: any-kernel
# forgets the centre tap: also picks dilations whose kernel is even (d = 3 for K = 17)
def best_dilation(K):
    return min(range(2, K + 1),
               key=lambda d: ((2 * d - 1) ** 2 + math.ceil(K / d) ** 2, d))

# %% mutant: smooth
# the real-valued minimum's rule of thumb, sqrt(K / 2), rounded
def best_dilation(K):
    return round(math.sqrt(K / 2))

# %% mutant: floor
# rounds K / d down, for the count and for the centre tap
def best_dilation(K):
    built = [d for d in range(2, K + 1) if (K // d) % 2 == 1]
    return min(built, key=lambda d: ((2 * d - 1) ** 2 + (K // d) ** 2, d))

# %% mutant: vans
# VAN's d = 3, whatever K
def best_dilation(K):
    return 3

# %% mutant: dilated-only
# minimises the dilated kernel alone: the largest dilation
def best_dilation(K):
    built = [d for d in range(2, K + 1) if math.ceil(K / d) % 2 == 1]
    return min(built, key=lambda d: (math.ceil(K / d) ** 2, d))
