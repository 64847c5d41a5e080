#!/usr/bin/env bash
# How results/h100-x1 was made on the lent H100 (see ../shared/device/README.md): from the project
# root there, with .gpu/small, .gpu/gpu-env.sh and .carry/ (holding repo.bundle: git bundle create
# .carry/repo.bundle --all) carried. Clones the bundle, registers the machine, runs asv per part.
#   (REUSE=1: keep /tmp/ab and its results from an earlier call on the same warm machine)
#   bash tools/device-asv.sh Metrics 'Forward\.time|ForwardBackward\.time'   (MACHINE, COMMITS, PART_TIMEOUT)
set -uo pipefail
here=$(pwd)
. .gpu/gpu-env.sh  # asv, virtualenv (and flash-attn-4) for a machine with no registry
torchdir=$(python3 -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))")
export ATTNBENCH_HOST_SITE="$torchdir:$PYTHONPATH" VIRTUALENV_SYSTEM_SITE_PACKAGES=1
unset ASV_PYTHONPATH
if [ "${REUSE:-0}" = 1 ] && [ -d /tmp/ab ]; then cd /tmp/ab; else
  rm -rf /tmp/ab && git clone -q .carry/repo.bundle /tmp/ab && cd /tmp/ab && git checkout -q main; fi
export PYTHONPATH=/tmp/ab/src:$PYTHONPATH
nvidia-smi --query-gpu=name,driver_version,clocks.sm,temperature.gpu --format=csv
python3 -c "from attnbench.system import register_asv_machine as r; print(r('${MACHINE:-h100-x1}'))"
start=$(date +%s)
[ $# -gt 0 ] || set -- .
for bench in "$@"; do
  timeout "${PART_TIMEOUT:-280}" asv run --machine "${MACHINE:-h100-x1}" --launch-method forkserver --show-stderr \
    --bench "$bench" "${COMMITS:-HEAD^!}" > "$OUT/asv-$(echo "$bench" | tr -c 'a-zA-Z0-9' _).log" 2>&1
  echo "asv run --bench '$bench' exited $? after $(( $(date +%s) - start )) s"
  tar cf "$OUT/results.tar" results
done
echo "total asv wall time: $(( $(date +%s) - start )) s"
nvidia-smi --query-gpu=clocks.sm,temperature.gpu --format=csv
