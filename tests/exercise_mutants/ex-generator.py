"""Wrong answers to ex-generator, chapter 4: The size of the generator (see README.md)."""

# %% mutant: dense-conv
# counts the k x k convolution as dense, dim_qk inputs per output channel
def generator_params(dim_qk, k, heads, group_width):
    return dim_qk * dim_qk * k * k + dim_qk + dim_qk * k * k * heads + k * k * heads

# %% mutant: no-biases
# forgets both biases
def generator_params(dim_qk, k, heads, group_width):
    return dim_qk * group_width * k * k + dim_qk * k * k * heads

# %% mutant: logits-per-channel
# emits k^2 logits per channel rather than per head
def generator_params(dim_qk, k, heads, group_width):
    return dim_qk * group_width * k * k + dim_qk + dim_qk * k * k * dim_qk + k * k * dim_qk
