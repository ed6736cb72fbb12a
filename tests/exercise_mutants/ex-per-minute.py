"""Wrong answers to ex-per-minute, chapter 8: Accuracy per minute (see README.md)."""

# %% mutant: times-speed
# multiplies by the speed: the right ranking's direction, not the right value
def accuracy_per_minute(rows, speeds):
    return {r["model"]: r["mean_acc"] * speeds[r["model"]] for r in rows}

# %% mutant: per-second
# divides by the seconds an epoch takes, not the minutes
def accuracy_per_minute(rows, speeds):
    return {r["model"]: r["mean_acc"] / (50_000 / speeds[r["model"]]) for r in rows}

# %% mutant: divide-by-speed
# divides by the speed instead of by the epoch's time: charges the fast mixers
def accuracy_per_minute(rows, speeds):
    return {r["model"]: r["mean_acc"] / speeds[r["model"]] for r in rows}
