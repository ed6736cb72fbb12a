"""Wrong answers to ex-which-dynamic, chapter 2: From one kernel per pixel to one per image (see README.md)."""

# %% mutant: one-group-per-channel
# (b): more groups give more kernels per pixel, still one per pixel
answer = "b"

# %% mutant: softmax
# (c): normalising changes the values, not what they depend on
answer = "c"

# %% mutant: zero-weights
# (d): the generator then emits its bias everywhere, one static kernel for every image
answer = "d"
