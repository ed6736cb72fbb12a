"""Wrong answers to ex-seed-noise, chapter 8: How many seeds? (see README.md)."""

# %% mutant: one-mean
# the standard error of one mean, sqrt(std^2 / n), not of a difference of two
def seeds_needed(diff, std):
    if diff == 0:
        return math.inf
    return max(2, math.ceil(4 * std ** 2 / diff ** 2))

# %% mutant: std-not-squared
# the spread enters linearly
def seeds_needed(diff, std):
    if diff == 0:
        return math.inf
    return max(2, math.ceil(8 * std / diff ** 2))

# %% mutant: rounded-down
# rounds the number of seeds down
def seeds_needed(diff, std):
    if diff == 0:
        return math.inf
    return max(2, math.floor(8 * std ** 2 / diff ** 2))
