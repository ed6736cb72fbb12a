"""Wrong answers to ex-predict-cost, chapter 6: From 8×8 to 32×32 (see README.md)."""

# %% mutant: pixels
# 16: grows like the number of pixels, as a convolution's cost does
ratio = 16

# %% mutant: side
# 4: grows like the side of the map
ratio = 4
