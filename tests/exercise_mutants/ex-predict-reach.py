"""Wrong answers to ex-predict-reach, chapter 4: How far ELSA's weights look (see README.md)."""

# %% mutant: only-the-pixel
# both False: thinks Hadamard attention reads the pixel alone
reach_1 = False
reach_2 = False

# %% mutant: everywhere
# both True: thinks the weights see the neighbours' windows too
reach_1 = True
reach_2 = True
