"""Wrong answers to ex-predict-shift, chapter 3: What the shift connects (see README.md)."""

# %% mutant: always-sees
# both True: thinks neighbouring pixels always attend to each other
unshifted_sees = True
shifted_sees = True

# %% mutant: never-sees
# both False: thinks the mask keeps them apart after the shift too
unshifted_sees = False
shifted_sees = False

# %% mutant: swapped
# the two answers exchanged
unshifted_sees = True
shifted_sees = False
