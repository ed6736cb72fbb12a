"""Wrong answers to ex-schedule, chapter 7: gnConv's channel schedule (see README.md)."""

# %% mutant: widest-first
# lists the widths from C down, the reverse order
def widths(C, order):
    return [C // 2 ** i for i in range(order)]

def spatial_channels(C, order):
    return sum(widths(C, order))

# %% mutant: one-step-too-many
# starts at C / 2^n: one width too many
def widths(C, order):
    return [C // 2 ** i for i in range(order + 1)][::-1]

def spatial_channels(C, order):
    return sum(widths(C, order))

# %% mutant: last-step-only
# right widths, but the depthwise convolution only sees the last q
def widths(C, order):
    return [C // 2 ** i for i in range(order)][::-1]

def spatial_channels(C, order):
    return C
