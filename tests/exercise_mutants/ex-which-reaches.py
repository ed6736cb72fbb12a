"""Wrong answers to ex-which-reaches, chapter 5: Which mixer reaches the corner (see README.md)."""

# %% mutant: dwconv
# (a): a 7x7 kernel reaches 3 pixels
answer = "a"

# %% mutant: lka
# (b): LKA's 23x23 composed kernel reaches 11 pixels, not 16
answer = "b"

# %% mutant: neighbourhood
# (c): a 7x7 window reaches 3 pixels
answer = "c"
