"""Training step, forward and backward: every implementation on the set's train workloads."""

from ._common import BASELINE, IMPLS, TRAIN_WORKLOADS, _CaseBenchmarks, _label, _SpeedupBenchmarks


if TRAIN_WORKLOADS:  # a set without train workloads has no such benchmarks

    class ForwardBackward(_CaseBenchmarks):
        mode = "forward_backward"
        params = (IMPLS, TRAIN_WORKLOADS)

        def time_forward_backward(self, impl, workload):
            self.case.call_synchronized("forward_backward")

        def peakmem_forward_backward(self, impl, workload):
            self.case.step("forward_backward")

        _label(time_forward_backward, "forward+backward: wall time, synchronized")
        _label(peakmem_forward_backward, "forward+backward: host peak RSS")


    class ForwardBackwardSpeedup(_SpeedupBenchmarks):
        mode = "forward_backward"
        params = ([i for i in IMPLS if i != BASELINE], TRAIN_WORKLOADS)
