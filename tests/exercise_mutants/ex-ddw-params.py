"""Wrong answers to ex-ddw-params, chapter 2: What D-DW's generator costs (see README.md)."""

# %% mutant: no-biases
# forgets the last convolution's bias and the layer's bias
def ddw_params(C, k, r):
    hidden = C // r
    return C * hidden + 2 * hidden + hidden * C * k * k

# %% mutant: no-norm
# forgets BatchNorm's weight and bias
def ddw_params(C, k, r):
    hidden = C // r
    return C * hidden + hidden * C * k * k + C * k * k + C

# %% mutant: static-kernel
# counts a depthwise convolution's C·k² + C, not the generator
def ddw_params(C, k, r):
    return C * k * k + C
