"""attnbench's in-house Triton attention: one kernel family behind ``triton-flash`` (prefill,
train) and ``triton-decode`` (one query row against a long cache).

One job per module:

- :mod:`.configs`: the kernel configurations and the deterministic chooser (standard library
  only: safe to import anywhere, e.g. from an implementation's ``config``);
- :mod:`.common`: what the kernels share (base-2 constants, the mask model, row loads);
- :mod:`.forward`: the forward kernel (a dense specialization and the general one), the
  split-key combine kernel and their launcher;
- :mod:`.backward`: the backward, deterministic unless a configuration asks for atomic dQ;
- :mod:`.decode`: decode (packed GQA rows, split keys) on top of the forward;
- :mod:`.api`: input checks, autograd, ``attention`` / ``attention_with_lse``.

Only :mod:`.configs` is importable without Triton; the others import it at module level, so
import them only where they run (inside an implementation's ``bind``/``forward``).
"""
