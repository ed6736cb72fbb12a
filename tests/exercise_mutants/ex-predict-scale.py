"""Wrong answers to ex-predict-scale, chapter 5: Doubling the input (see README.md)."""

# %% mutant: linear
# 2: thinks LKA is linear, like a convolution
factor = 2

# %% mutant: third-order
# 8: counts one factor too many
factor = 8
