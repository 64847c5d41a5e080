"""The registry: what it lists, why combinations are unsupported, and a bare import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import attnbench
from attnbench import Implementation, Workload, get_impl, impl_names, register, select_impls
from attnbench.impls.eager import Eager

from .conftest import CPU

FAMILIES = {"reference", "pytorch", "sdpa", "in-house", "flash-attn", "xformers"}


@pytest.mark.parametrize("name", impl_names())
def test_each_implementation_describes_itself(name):
    impl = get_impl(name)
    assert isinstance(impl, Implementation)
    assert impl.name == name
    assert isinstance(impl.family, str) and impl.family
    assert impl.family in FAMILIES, impl.family
    assert isinstance(impl.description, str) and len(impl.description) > 10
    assert impl.dtypes and all(impl.dtypes.values())
    assert type(impl).forward is not Implementation.forward  # an actual forward
    assert name in repr(impl)


def test_listing():
    names = impl_names()
    assert len(names) == len(set(names))
    assert "reference" in names
    assert "reference" not in impl_names(benchmarked_only=True)
    # not benchmarked by default: the float64 reference, and the kernels' named variants
    variants = {n for n in names if n.startswith("triton-flash-")}
    assert variants and set(impl_names(benchmarked_only=True)) == set(names) - {
        "reference",
        *variants,
    }


def test_select_impls_globs_in_order_without_repeats():
    sdpa = [i.name for i in select_impls(["sdpa-*"])]
    assert sdpa == [n for n in impl_names() if n.startswith("sdpa-")]
    assert {"sdpa-math", "sdpa-flash", "sdpa-efficient", "sdpa-cudnn"} <= set(sdpa)
    chosen = [i.name for i in select_impls(["chunked", "eager", "e*", "chunked"])]
    others = [n for n in impl_names() if n.startswith("e") and n != "eager"]  # eager-compiled
    assert chosen == ["chunked", "eager", *others]


def test_registering_a_name_twice_is_refused():
    class Duplicate(Eager):
        name = "eager"

    with pytest.raises(ValueError, match="'eager' registered twice"):
        register(Duplicate)
    assert type(get_impl("eager")) is not Duplicate


# -- unsupported combinations give reasons ----------------------------------------------------
W = Workload(1, 4, 2, 32, 32, 64, dtype="fp32")


@pytest.mark.parametrize("name", ["sdpa-cudnn", "sdpa-efficient"])
def test_cuda_only_on_cpu(name):
    assert get_impl(name).unsupported_reasons(W, CPU) == ["needs a CUDA device"]


def test_dtype_reasons_on_cuda_are_data_not_hardware():
    """A torch.device('cuda') can be named without a GPU: the declared dtypes are checked."""
    cuda = torch.device("cuda")
    reasons = get_impl("sdpa-cudnn").unsupported_reasons(W, cuda)
    assert reasons == ["dtype fp32 unsupported on cuda (supports bf16, fp16)"]
    assert get_impl("sdpa-flash").unsupported_reasons(
        W.with_(head_dim=512, dtype="fp16"), cuda
    ) == ["head_dim 512 > 256 on CUDA"]
    assert get_impl("reference").unsupported_reasons(W, cuda) == ["needs a CPU device"]


def test_head_dim_limits_are_reported():
    w = W.with_(dtype="fp16", head_dim=300)
    reasons = get_impl("sdpa-cudnn").unsupported_reasons(w, torch.device("cuda"))
    assert "head_dim 300 > 256" in reasons
    assert "head_dim 300 is not a multiple of 8" in reasons


def test_v_head_dim_reasons():
    w = W.with_(v_head_dim=32)
    assert get_impl("sdpa-flash").unsupported_reasons(w, CPU) == [
        "head_dim of V (32) differs from that of Q/K (64)"
    ]
    assert get_impl("eager").unsupported_reasons(w, CPU) == []


class _ForwardOnly(Eager):
    name = "test-forward-only"
    supports_backward = False
    supports_v_head_dim = False
    max_head_dim = 64
    head_dim_multiple = 16


def test_declared_limits_of_a_test_implementation():
    impl = _ForwardOnly()
    assert impl.unsupported_reasons(W, CPU) == []
    train = W.with_(scenario="train", head_dim=72, v_head_dim=40)
    reasons = impl.unsupported_reasons(train, CPU)
    assert "head_dim 72 > 64" in reasons
    assert "head_dim 72 is not a multiple of 16" in reasons
    assert "head_dim 40 is not a multiple of 16" in reasons
    assert "head_dim of V (40) differs from that of Q/K (72)" in reasons
    assert "no backward pass (forward only)" in reasons
    with pytest.raises(attnbench.UnsupportedError, match="no backward pass"):
        attnbench.prepare(impl, W.with_(scenario="train"), CPU)


class _NeedsMissingPackage(Eager):
    name = "test-needs-missing"
    requires = ("surely_not_installed_pkg", "torch")


def test_missing_optional_package_is_reported():
    impl = _NeedsMissingPackage()
    why = impl.availability()
    assert why is not None
    assert "surely_not_installed_pkg" in why and "not installed" in why
    assert "torch" not in why.replace("surely_not_installed_pkg", "")  # torch is installed
    assert impl.unsupported_reasons(W, CPU) == [why]
    with pytest.raises(attnbench.UnsupportedError, match="not installed"):
        attnbench.prepare(impl, W, CPU)

    class _NeedsTorch(Eager):
        name = "test-needs-torch"
        requires = ("torch",)

    assert _NeedsTorch().availability() is None


# -- a bare import --------------------------------------------------------------------------
BLOCKED = ("triton", "flash_attn", "xformers", "asv", "asv_runner")

_BARE_IMPORT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    BLOCKED = set(sys.argv[1].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
            return None

    sys.meta_path.insert(0, Block())

    import attnbench, torch

    w = attnbench.Workload(1, 4, 2, 8, 12, 16, dtype="fp32")
    cpu = torch.device("cpu")
    case = attnbench.prepare("eager", w, "cpu")
    blocked_import_works = True
    try:
        import asv  # noqa: F401
    except ModuleNotFoundError:
        blocked_import_works = False
    print(json.dumps({
        "impls": attnbench.impl_names(),
        "cuda": torch.cuda.is_available(),
        "default_device": str(attnbench.devices.default_device()),
        "loaded_blocked": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
        "cudnn_reasons": attnbench.get_impl("sdpa-cudnn").unsupported_reasons(w, cpu),
        "eager_ok": case.forward_error().within("fp32"),
        "blocked_import_works": blocked_import_works,
    }))
    """
)


def test_import_without_cuda_or_optional_packages():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, "-c", _BARE_IMPORT, ",".join(BLOCKED)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["blocked_import_works"] is False  # the blocker did block
    assert result["cuda"] is False
    assert result["default_device"] == "cpu"
    assert result["loaded_blocked"] == []
    assert result["impls"] == impl_names()
    assert result["cudnn_reasons"] == ["needs a CUDA device"]
    assert result["eager_ok"] is True
