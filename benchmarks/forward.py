"""Forward pass: every implementation on every workload of the chosen set."""

from ._common import BASELINE, IMPLS, WORKLOADS, _CaseBenchmarks, _label, _SpeedupBenchmarks


class Forward(_CaseBenchmarks):
    params = (IMPLS, WORKLOADS)

    def time_forward(self, impl, workload):
        self.case.call_synchronized("forward")

    def peakmem_forward(self, impl, workload):
        self.case.step("forward")

    def track_max_error(self, impl, workload):
        return self.case.forward_error().max_abs

    def track_rel_error(self, impl, workload):
        return self.case.forward_error().rel_norm

    _label(time_forward, "forward: wall time, synchronized")
    _label(peakmem_forward, "forward: host peak RSS")
    _label(track_max_error, "forward: max abs error vs float64 reference", "abs error")
    _label(track_rel_error, "forward: relative norm error vs float64 reference", "rel error")


class ForwardSpeedup(_SpeedupBenchmarks):
    params = ([i for i in IMPLS if i != BASELINE], WORKLOADS)
