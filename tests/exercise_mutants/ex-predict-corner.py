"""Wrong answers to ex-predict-corner, chapter 1: A constant map at the corner (see README.md)."""

# %% mutant: padding-ignored
# both 3.0: forgets that the static mean reads zeros outside the image
box_corner = 3.0
attention_corner = 3.0

# %% mutant: attention-reads-zeros
# both 4/3: thinks attention's weights, like the mean's, keep mass on the zeros outside
box_corner = 3.0 * 4 / 9
attention_corner = 3.0 * 4 / 9

# %% mutant: swapped
# the two answers exchanged
box_corner = 3.0
attention_corner = 3.0 * 4 / 9
