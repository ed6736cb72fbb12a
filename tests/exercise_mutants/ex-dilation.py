"""Wrong answers to ex-dilation, chapter 1: Dilation is a sparse larger kernel (see README.md)."""

# %% mutant: odd-positions
# puts the taps in the odd rows and columns, one pixel off
def dilated_as_dense(w3):
    one, groups = w3.shape[:2]
    dense = w3.new_zeros(one, groups, 5, 5, 1, 1)
    dense[:, :, 1::2, 1::2][:, :, :2, :2] = w3.view(one, groups, 3, 3, 1, 1)[:, :, :2, :2]
    return dense.view(one, groups, 25, 1, 1)

# %% mutant: transposed
# places the 3x3 kernel transposed (rows and columns swapped)
def dilated_as_dense(w3):
    one, groups = w3.shape[:2]
    dense = w3.new_zeros(one, groups, 5, 5, 1, 1)
    dense[:, :, ::2, ::2] = w3.view(one, groups, 3, 3, 1, 1).transpose(2, 3)
    return dense.view(one, groups, 25, 1, 1)

# %% mutant: repeated-taps
# fills the gaps by repeating each tap (nearest upsampling) instead of zeros
def dilated_as_dense(w3):
    one, groups = w3.shape[:2]
    grid = w3.view(one, groups, 3, 3, 1, 1)
    dense = grid.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)[:, :, :5, :5]
    return dense.reshape(one, groups, 25, 1, 1)
