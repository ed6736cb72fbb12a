"""Wrong answers to ex-kernel-taps, chapter 7: How large a global filter's kernel is (see README.md)."""

# %% mutant: parameters
# 224: the real parameters per channel, 14 x 8 complex weights
taps = 14 * 8 * 2

# %% mutant: spectrum
# 112: the frequencies of the half spectrum
taps = 14 * 8
