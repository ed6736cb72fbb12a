"""Wrong answers to ex-swin-index, chapter 3: Swin's relative position index (see README.md)."""

# %% mutant: key-minus-query
# indexes by key - query, neighbourhood attention's convention: the transpose
def relative_index(M):
    r, c = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    r, c = r.flatten(), c.flatten()
    dr, dc = r[None] - r[:, None], c[None] - c[:, None]
    return (dr + M - 1) * (2 * M - 1) + (dc + M - 1)

# %% mutant: row-stride-M
# strides the rows by M instead of 2M - 1, so different offsets share rows
def relative_index(M):
    r, c = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    r, c = r.flatten(), c.flatten()
    dr, dc = r[:, None] - r[None], c[:, None] - c[None]
    return (dr + M - 1) * M + (dc + M - 1)

# %% mutant: no-shift
# forgets to add M - 1, so negative offsets give negative rows
def relative_index(M):
    r, c = torch.meshgrid(torch.arange(M), torch.arange(M), indexing="ij")
    r, c = r.flatten(), c.flatten()
    return (r[:, None] - r[None]) * (2 * M - 1) + (c[:, None] - c[None])
