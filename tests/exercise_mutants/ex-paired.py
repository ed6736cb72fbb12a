"""Wrong answers to ex-paired, chapter 8: A paired interval (see README.md)."""

# %% mutant: unpaired
# the difference of the two means with their own spreads: the shared seed effect stays in
def paired_interval(a, b):
    seeds = sorted(set(a) & set(b))
    xa, xb = [100 * a[s] for s in seeds], [100 * b[s] for s in seeds]
    mean = statistics.fmean(xa) - statistics.fmean(xb)
    half = T975[len(seeds) - 1] * math.sqrt((statistics.variance(xa) + statistics.variance(xb)) / len(seeds))
    return mean, mean - half, mean + half

# %% mutant: every-seed
# takes every seed of either side, a missing one as 0
def paired_interval(a, b):
    seeds = sorted(set(a) | set(b))
    d = [100 * (a.get(s, 0.0) - b.get(s, 0.0)) for s in seeds]
    mean = statistics.fmean(d)
    half = T975[len(d) - 1] * statistics.stdev(d) / math.sqrt(len(d))
    return mean, mean - half, mean + half

# %% mutant: normal-quantile
# 1.96 in place of Student's t: far too narrow for three seeds
def paired_interval(a, b):
    seeds = sorted(set(a) & set(b))
    d = [100 * (a[s] - b[s]) for s in seeds]
    mean = statistics.fmean(d)
    half = 1.96 * statistics.stdev(d) / math.sqrt(len(d))
    return mean, mean - half, mean + half

# %% mutant: a-seeds
# pairs every seed of a, as if b had them all
def paired_interval(a, b):
    seeds = sorted(a)
    d = [100 * (a[s] - b[s]) for s in seeds]
    mean = statistics.fmean(d)
    half = T975[len(d) - 1] * statistics.stdev(d) / math.sqrt(len(d))
    return mean, mean - half, mean + half
