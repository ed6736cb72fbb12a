"""Wrong answers to ex-verdict, chapter 8: Reading a verdict (see README.md)."""

# %% mutant: reproduces
# (a): reads the positive mean as the result
answer = "a"

# %% mutant: contradicts
# (b): reads the interval reaching below zero as evidence against
answer = "b"

# %% mutant: pending
# (d): three seeds are enough for a verdict
answer = "d"
