"""Wrong answers to ex-predict-pairing, chapter 8: Why pair the seeds? (see README.md)."""

# %% mutant: false
# thinks pairing cannot help: the seeds are the same noise either way
paired_is_narrower = False

# %% mutant: words
# answers in words, not a boolean
paired_is_narrower = "yes"
