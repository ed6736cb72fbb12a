"""Wrong answers to ex-fold, chapter 2: The batch-folding trick (see README.md)."""

# %% mutant: first-kernel
# applies the first image's kernels to every image
def per_image_dwconv(x, kernels):
    C, k = x.shape[1], kernels.shape[-1]
    return F.conv2d(x, kernels[0][:, None], padding=k // 2, groups=C)

# %% mutant: channel-major
# folds x channel-major, (C, B), but the kernels image-major, (B, C): the pairs mismatch
def per_image_dwconv(x, kernels):
    B, C, H, W = x.shape
    k = kernels.shape[-1]
    folded = x.transpose(0, 1).reshape(1, B * C, H, W)
    y = F.conv2d(folded, kernels.reshape(B * C, 1, k, k), padding=k // 2, groups=B * C)
    return y.view(B, C, H, W)

# %% mutant: mean-kernel
# averages the kernels over the batch, one convolution for all
def per_image_dwconv(x, kernels):
    C, k = x.shape[1], kernels.shape[-1]
    return F.conv2d(x, kernels.mean(0)[:, None], padding=k // 2, groups=C)

# %% mutant: loop
# right numbers, but one F.conv2d per image: the trick is that one call does the whole batch
def per_image_dwconv(x, kernels):
    C, k = x.shape[1], kernels.shape[-1]
    return torch.cat([F.conv2d(x[b:b + 1], kernels[b, :, None], padding=k // 2, groups=C)
                      for b in range(x.shape[0])])

# %% mutant: fixed-padding
# folds the batch right, but pads by 1 whatever the kernel's size: 3×3 kernels come out right,
# 5×5 ones shrink the map
def per_image_dwconv(x, kernels):
    B, C, H, W = x.shape
    k = kernels.shape[-1]
    y = F.conv2d(x.reshape(1, B * C, H, W), kernels.reshape(B * C, 1, k, k), padding=1,
                 groups=B * C)
    return y.view(B, C, *y.shape[-2:])
