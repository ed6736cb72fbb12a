"""Wrong answers to ex-weights-shape, chapter 1: What the shape of the weights says (see README.md)."""

# %% mutant: static
# (a): one kernel per channel shared by every image, a plain depthwise convolution
answer = "a"

# %% mutant: per-pixel
# (c): a kernel per pixel and group, I-D-DW's or attention's shape
answer = "c"

# %% mutant: fixed
# (d): one weight map shared by all channels, PoolFormer's shape
answer = "d"
