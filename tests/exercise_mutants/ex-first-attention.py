"""Wrong answers to ex-first-attention, chapter 6: Where C-C-T-T attends (see README.md)."""

# %% mutant: stride-4
# 8: counts one downsampling too few
attention_side = 8

# %% mutant: last-stage
# 2: the last stage's map
attention_side = 2
