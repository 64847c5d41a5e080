"""Training step, forward and backward: every implementation on the set's train workloads."""

from asv_runner.benchmarks.mark import skip_benchmark_if

from ._common import HAS_CUDA, IMPLS, TIMED_TRAIN_WORKLOADS, TRAIN_WORKLOADS, _label, _Swept, _Timed

if TIMED_TRAIN_WORKLOADS:  # none on a GPU unless ATTNBENCH_TIMED_SET names some

    class ForwardBackward(_Timed):
        mode = "forward_backward"
        params = (IMPLS, TIMED_TRAIN_WORKLOADS)

        def time_forward_backward(self, impl, workload):
            self.case.call_synchronized("forward_backward")

        @skip_benchmark_if(HAS_CUDA)
        def peakmem_forward_backward(self, impl, workload):
            self.case.step("forward_backward")

        _label(time_forward_backward, "forward+backward: wall time of a synchronized call")
        _label(peakmem_forward_backward, "forward+backward: host peak RSS")


if TRAIN_WORKLOADS:  # a set without train workloads has no such benchmarks

    class ForwardBackwardMetrics(_Swept):
        mode = "forward_backward"
        params = (IMPLS, TRAIN_WORKLOADS)

        def setup_cache(self):
            return self.measure()
