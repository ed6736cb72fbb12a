"""Wrong answers to ex-compose, chapter 5: Composing two 3×3 kernels (see README.md)."""

# %% mutant: flipped
# places b's taps mirrored (index 2 - i), where placing each copy of a at b's own tap
# offset is what composes two correlations into one
def compose(a, b):
    C = a.shape[0]
    out = a.new_zeros(C, 1, 5, 5)
    for i in range(3):
        for j in range(3):
            out[:, :, i:i + 3, j:j + 3] += b[:, :, 2 - i:3 - i, 2 - j:3 - j] * a
    return out

# %% mutant: overwrite
# assigns each placed copy instead of adding it, so overlaps keep only the last
def compose(a, b):
    C = a.shape[0]
    out = a.new_zeros(C, 1, 5, 5)
    for i in range(3):
        for j in range(3):
            out[:, :, i:i + 3, j:j + 3] = b[:, :, i:i + 1, j:j + 1] * a
    return out

# %% mutant: centre-product
# multiplies the kernels tap by tap in the centre, as if composition were a product
def compose(a, b):
    out = a.new_zeros(a.shape[0], 1, 5, 5)
    out[:, :, 1:4, 1:4] = a * b
    return out
