"""Forward pass: every implementation on the set's prefill, masked prefill and decode workloads."""

from asv_runner.benchmarks.mark import skip_benchmark_if

from ._common import (
    DECODE_WORKLOADS,
    HAS_CUDA,
    IMPLS,
    MASKED_WORKLOADS,
    PREFILL_WORKLOADS,
    TIMED_WORKLOADS,
    _label,
    _Swept,
    _Timed,
)


class Forward(_Timed):
    params = (IMPLS, TIMED_WORKLOADS)

    def time_forward(self, impl, workload):
        self.case.call_synchronized("forward")

    @skip_benchmark_if(HAS_CUDA)  # host RSS says nothing about a GPU kernel
    def peakmem_forward(self, impl, workload):
        self.case.step("forward")

    _label(time_forward, "forward: wall time of a synchronized call")
    _label(peakmem_forward, "forward: host peak RSS")


# Each class defines its own setup_cache: asv keys the cache by its source location.
if PREFILL_WORKLOADS:

    class ForwardMetrics(_Swept):
        """Prefill, causal or full."""

        params = (IMPLS, PREFILL_WORKLOADS)

        def setup_cache(self):
            return self.measure()


if MASKED_WORKLOADS:

    class MaskedMetrics(_Swept):
        """Prefill with masks beyond causal: sliding window, packed documents, ALiBi."""

        params = (IMPLS, MASKED_WORKLOADS)

        def setup_cache(self):
            return self.measure()


if DECODE_WORKLOADS:

    class DecodeMetrics(_Swept):
        """One query row against a KV cache (GB/s over the K and V bytes read)."""

        params = (IMPLS, DECODE_WORKLOADS)

        def setup_cache(self):
            return self.measure()
