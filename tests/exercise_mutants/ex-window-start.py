"""Wrong answers to ex-window-start, chapter 3: Where a clamped window starts (see README.md)."""

# %% mutant: no-clamp
# centres every window on its pixel, reaching outside the axis at the border
def window_start(i, L, k):
    return i - k // 2

# %% mutant: start-only
# clamps at the start of the axis but not at its end
def window_start(i, L, k):
    return max(i - k // 2, 0)

# %% mutant: off-by-one
# slides back by i + r - L, one pixel too little
def window_start(i, L, k):
    r = k // 2
    start = max(i - r, 0)
    if i + r >= L:
        start -= i + r - L
    return start
