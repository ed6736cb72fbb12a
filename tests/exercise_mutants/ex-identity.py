"""Wrong answers to ex-identity, chapter 7: A global filter that does nothing (see README.md)."""

# %% mutant: imaginary-one
# W = i: sets the imaginary part to one instead of the real part
def make_identity(gf):
    with torch.no_grad():
        gf.complex_weight.zero_()
        gf.complex_weight[..., 1] = 1.0

# %% mutant: all-ones
# W = 1 + i: fills both parts with ones
def make_identity(gf):
    with torch.no_grad():
        gf.complex_weight.fill_(1.0)

# %% mutant: dc-only
# keeps only the zero frequency, which is the mean, not the identity
def make_identity(gf):
    with torch.no_grad():
        gf.complex_weight.zero_()
        gf.complex_weight[:, 0, 0, 0] = 1.0

# %% mutant: rescaled
# W = H W: rescales as if the inverse transform did not undo the forward one
def make_identity(gf):
    with torch.no_grad():
        gf.complex_weight.zero_()
        gf.complex_weight[..., 0] = 8.0 * 9.0
