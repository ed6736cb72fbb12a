"""Wrong answers to ex-predict-roll, chapter 2: Rolling the image (see README.md)."""

# %% mutant: everything-changes
# both True: thinks D-DW's kernels depend on where the content is
ddw_kernels_change = True
idw_weights_roll = True

# %% mutant: nothing-moves
# both False: thinks I-D-DW's weights stay in place
ddw_kernels_change = False
idw_weights_roll = False

# %% mutant: swapped
# the two answers exchanged
ddw_kernels_change = True
idw_weights_roll = False
