"""attnbench check: a pair declared supported that crashes is a FAIL, out of memory a skip."""

import torch

from attnbench.impls.base import Implementation
from attnbench.measure.correctness import check_pair
from attnbench.workload import Workload

W = Workload(1, 2, 2, 16, 16, 8, dtype="fp32")
CPU = torch.device("cpu")


class _Crashes(Implementation):
    name = "test-crashes"
    family = "test"
    message = "boom"

    def forward(self, q, k, v, *, causal, scale, mask=None):
        raise RuntimeError(self.message)


class _OutOfMemory(_Crashes):
    name = "test-oom"

    def forward(self, q, k, v, *, causal, scale, mask=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 TiB")


def test_declared_supported_crash_fails():
    status, notes = check_pair(_Crashes(), W, CPU)
    assert status == "FAIL" and "declared supported" in notes[0] and "boom" in notes[0]


def test_out_of_memory_is_a_skip():
    status, notes = check_pair(_OutOfMemory(), W, CPU)
    assert status == "skip" and "out of memory" in notes[0]


def test_check_shows_a_declared_loss_and_exits_zero(capsys):
    """eager at bf16 x30: shown as "lossy" with its error, counted apart, not a failure."""
    from attnbench import cli

    argv = ["check", "-i", "eager", "--heads", "2", "--seq-len", "128", "--dtype", "bf16"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "lossy  eager on" in out and "x30: " in out
    assert "0 of 1 supported pairs pass, 1 lossy" in out
