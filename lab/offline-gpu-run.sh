#!/usr/bin/env bash
# The asv suite on a GPU host without network, from a git bundle and a folder of wheels.
#
#   git bundle create repo.bundle --all                        # where the repository is
#   pip download -d wheels asv==0.6.6 asv-runner==0.3.2 virtualenv  # for the host's Python
#   BUNDLE=repo.bundle WHEELS=wheels COMMITS=HEAD bash offline-gpu-run.sh   # on the GPU host
#
# The host needs git, Python with a CUDA PyTorch (and Triton), and nvidia-smi. WHEELS (optional)
# are installed with pip --no-index into $WORK/site; nothing is downloaded. The bundle is cloned
# into $WORK/repo (WORK default /tmp/attnbench-offline); a second call fetches newer commits
# from the bundle and measures only what is still missing (tools.ci.bench resumes by shard).
#   MACHINE        asv machine name (default: GPU model and count, h100-x1: a card model's own)
#   BRANCH         the bundle's branch checked out, whose benchmarks/ run (default main)
#   COMMITS        commits to measure (default HEAD: that branch's newest)
#   SHARDS         asv --bench regexes, one asv run each (default: one per benchmark class)
#   SET, IMPLS     ATTNBENCH_SET, ATTNBENCH_IMPLS
#   SHARD_TIMEOUT  seconds before a shard is killed (default 1700)
#   AGAIN=1        measure again where results exist (tools.ci.bench --again)
#   TOGETHER=1     one asv run per shard for all the commits (--together: a long history)
#   BASELINE       ATTNBENCH_BASELINE (none: no eager timed for speedups)
# Results: $WORK/repo/results/$MACHINE (asv) and $WORK/repo/records/$MACHINE (every figure's
# record), both in $WORK/results.tar; the run's log in $WORK/bench.log.
set -euo pipefail
bundle=$(realpath "${BUNDLE:?BUNDLE=path to a git bundle of the repository}")
work=${WORK:-/tmp/attnbench-offline}
mkdir -p "$work"
if [ -z "${MACHINE:-}" ]; then
  model=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oE '[ABHL][0-9]{2,3}' | head -1)
  [ -n "$model" ] || { echo "offline-gpu-run: unknown GPU model: set MACHINE" >&2; exit 2; }
  MACHINE=$(echo "$model" | tr '[:upper:]' '[:lower:]')-x$(nvidia-smi -L | grep -c '^GPU')
fi
echo "machine: $MACHINE"
if [ -n "${WHEELS:-}" ] && compgen -G "$WHEELS/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --target "$work/site" "$WHEELS"/*.whl
  export PYTHONPATH="$work/site${PYTHONPATH:+:$PYTHONPATH}" PATH="$work/site/bin:$PATH"
fi
[ -d "$work/repo" ] || git clone -q --no-checkout "$bundle" "$work/repo"
git -C "$work/repo" fetch -q "$bundle" '+refs/heads/*:refs/remotes/origin/*'  # newer commits
git -C "$work/repo" checkout -q --detach "origin/${BRANCH:-main}"  # its benchmarks/ runs
cd "$work/repo" && git log --oneline -1
export PYTHONPATH="$work/repo/src:${PYTHONPATH:-}" ATTNBENCH_RECORDS="$work/repo/records/$MACHINE"
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1
# asv's new environments run `pip install wheel pip>=8`: without an index that is satisfied only
# by the host's own packages, seen through the system site (the host's PyTorch is seen anyway)
export VIRTUALENV_SYSTEM_SITE_PACKAGES=${VIRTUALENV_SYSTEM_SITE_PACKAGES:-1}
export ATTNBENCH_FA4_DISK_CACHE=${ATTNBENCH_FA4_DISK_CACHE:-1}  # as the GPU workflow
if [ -n "${SET:-}" ]; then export ATTNBENCH_SET=$SET; fi
if [ -n "${IMPLS:-}" ]; then export ATTNBENCH_IMPLS=$IMPLS; fi
if [ -n "${BASELINE:-}" ]; then export ATTNBENCH_BASELINE=$BASELINE; fi
args=()
[ "${AGAIN:-0}" = 1 ] && args+=(--again)
[ "${TOGETHER:-0}" = 1 ] && args+=(--together)
for s in ${SHARDS:-}; do args+=(--shard "$s"); done
status=0
python3 -m tools.ci.bench --machine "$MACHINE" --commits "${COMMITS:-HEAD}" \
  --shard-timeout "${SHARD_TIMEOUT:-1700}" ${args[@]+"${args[@]}"} > "$work/bench.log" 2>&1 || status=$?
echo "tools.ci.bench exited $status"
grep -E "took|exited|stopped|measured|not clean|shard\(s\)" "$work/bench.log" | cut -c1-200 || true
tar cf "$work/results.tar" results records
exit "$status"
