"""Forward pass: every implementation on every workload of the chosen set."""

from asv_runner.benchmarks.mark import skip_benchmark_if

from ._common import HAS_CUDA, IMPLS, WORKLOADS, _label, _Swept, _Timed


class Forward(_Timed):
    params = (IMPLS, WORKLOADS)

    def time_forward(self, impl, workload):
        self.case.call_synchronized("forward")

    @skip_benchmark_if(HAS_CUDA)  # host RSS says nothing about a GPU kernel
    def peakmem_forward(self, impl, workload):
        self.case.step("forward")

    _label(time_forward, "forward: wall time of a synchronized call")
    _label(peakmem_forward, "forward: host peak RSS")


class ForwardMetrics(_Swept):
    params = (IMPLS, WORKLOADS)

    def setup_cache(self):
        return self.measure()
