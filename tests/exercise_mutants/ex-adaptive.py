"""Wrong answers to ex-adaptive, chapter 6: Input-adaptive, from derivatives (see README.md)."""

# %% mutant: always-adaptive
# returns True whatever the mixer, the function form of the old hard-coded answers
def adaptive_jvp(mixer, x1, x2, direction):
    return True

# %% mutant: outputs
# compares the outputs at x1 and x2 instead of the derivatives
def adaptive_jvp(mixer, x1, x2, direction):
    return not torch.allclose(mixer(x1), mixer(x2), atol=1e-9, rtol=0)

# %% mutant: one-point
# computes both products at x1
def adaptive_jvp(mixer, x1, x2, direction):
    _, change1 = torch.autograd.functional.jvp(mixer, x1, direction)
    _, change2 = torch.autograd.functional.jvp(mixer, x1, direction)
    return not torch.allclose(change1, change2, atol=1e-9, rtol=0)
