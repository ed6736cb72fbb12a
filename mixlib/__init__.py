"""mixlib: the vision token mixers of the book, each written as y_i = Σ_j w_ij ⊙ x_j."""
from . import mixers, ops
from .ops import local_aggregate, local_similarity

__version__ = "0.1.0"
__all__ = ["mixers", "ops", "local_aggregate", "local_similarity", "__version__"]
