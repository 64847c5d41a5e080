"""attnbench: attention implementations, workloads, and the measuring code that compares them.

Importing attnbench needs PyTorch only: no GPU and no optional backend package.
"""

from .case import Case, prepare
from .catalogue import get_workload, select_workloads, set_names, workload_set
from .errors import AttnbenchError, InvalidWorkloadError, UnknownNameError, UnsupportedError
from .impls import Implementation, get_impl, impl_names, register, select_impls
from .workload import Workload

__version__ = "0.1.0"

__all__ = [
    "AttnbenchError",
    "Case",
    "Implementation",
    "InvalidWorkloadError",
    "UnknownNameError",
    "UnsupportedError",
    "Workload",
    "get_impl",
    "get_workload",
    "impl_names",
    "prepare",
    "register",
    "select_impls",
    "select_workloads",
    "set_names",
    "workload_set",
]
