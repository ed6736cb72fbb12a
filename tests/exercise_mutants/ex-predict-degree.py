"""Wrong answers to ex-predict-degree, chapter 7: The degree of gnConv (see README.md)."""

# %% mutant: order
# 8 = 2^3: counts the gates but not p_0
factor = 8

# %% mutant: second-order
# 4: takes gnConv for quadratic in x (degree 2), as LKA is
factor = 4
