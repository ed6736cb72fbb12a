"""Test-session settings that must be in place before any test module imports a library.

Without a GPU, the Triton kernels run in Triton's interpreter. TRITON_INTERPRET must be set
before triton is first imported, and timm (test_models, test_timm_parity) imports it on its
own, so it is set here rather than in test_triton.py.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
