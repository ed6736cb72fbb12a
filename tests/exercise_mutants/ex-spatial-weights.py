"""Wrong answers to ex-spatial-weights, chapter 5: What the decomposition saves (see README.md)."""

# %% mutant: dense
# K^2, the kernel LKA avoids
def spatial_weights(K, d):
    return K * K

# %% mutant: floor
# rounds K / d down
def spatial_weights(K, d):
    return (2 * d - 1) ** 2 + (K // d) ** 2

# %% mutant: dilated-only
# counts only the dilated kernel
def spatial_weights(K, d):
    return math.ceil(K / d) ** 2
