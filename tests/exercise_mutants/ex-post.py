"""Wrong answers to ex-post, chapter 6: Post-softmax relative attention (see README.md)."""

# %% mutant: twice-transposed
# adds 2 * bias.T: passed the old check, whose bias was zero or constant
def post_softmax(q, k, v, bias):
    return ((q @ k.T / q.shape[-1] ** 0.5).softmax(-1) + 2 * bias.T) @ v

# %% mutant: pre-softmax
# adds the bias before the softmax: CoAtNet's form, not this one
def post_softmax(q, k, v, bias):
    return (q @ k.T / q.shape[-1] ** 0.5 + bias).softmax(-1) @ v

# %% mutant: no-scale
# forgets the 1 / sqrt(d)
def post_softmax(q, k, v, bias):
    return ((q @ k.T).softmax(-1) + bias) @ v
