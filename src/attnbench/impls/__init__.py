"""Attention implementations behind one interface. Adding one: a module here, imported below.

Modules here import only torch at import time; an optional backend imports its package
inside ``forward`` and names it in ``requires``, so ``import attnbench`` never needs it.
"""

# registration order is listing order
from . import reference, eager, sdpa, chunked, triton, flash_attn, xformers, sdpa_fa, flex, compiled  # noqa: F401, I001
from .base import Implementation
from .registry import get_impl, impl_names, register, select_impls

__all__ = ["Implementation", "get_impl", "impl_names", "register", "select_impls"]
