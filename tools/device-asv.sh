#!/usr/bin/env bash
# The asv suite on a lent GPU machine with no network (../shared/device/README.md), through the
# pipeline's own tools/ci/bench.py (one asv run per class, resumable, per-shard timeout). From the
# project root there, with .gpu/small, .gpu/gpu-env.sh and .carry/ carried (.carry/repo.bundle:
# git bundle create .carry/repo.bundle --all; optional .carry/wheels: wheels for the machine's Python).
#   COMMITS=eb364f2 STOP=360 SHARDS='^forward\.DecodeMetrics\. ^train\.ForwardBackwardMetrics\.' \
#     bash tools/device-asv.sh
# SET / IMPLS: ATTNBENCH_SET / ATTNBENCH_IMPLS. A second call on the same warm machine reuses
# /tmp/ab (its results included) and measures only the shards still missing. MACHINE defaults to
# the card's model and count (h100-x1, h200-x1, ...: a lent H200 never files under h100-x1). Full
# records (GPU clock, temperature, config, wall seconds) go to records/$MACHINE/<commit>.jsonl.
#
# A run longer than one device call (10 min): WAIT_S=570 starts it detached (setsid: it outlives
# the call, not the machine) and waits up to WAIT_S seconds; the same command again, within the
# 30 s the machine stays warm, waits for the same run, and the call that sees it end copies
# bench.log and results.tar into $OUT. SHARDS=. measures the whole suite in one asv run:
#   SHARDS=. WAIT_S=570 COMMITS=HEAD bash tools/device-asv.sh    # again until "run ended"
# flash-attn-4's CUTLASS part (.gpu/big, 61 MiB) no longer fits one 64 MiB carry beside this repo:
# split it here (split -b 33000000 .gpu/big/cu13.tar.xz; parts into .gpu/b1 and .gpu/b2), carry
# .gpu/b1 with `mkdir -p /tmp/gpu-stash && cat .gpu/b1/* > /tmp/gpu-stash/cu13.tar.xz`, then at
# once .gpu/b2 + .gpu/small + .gpu/gpu-env.sh with `cat .gpu/b2/* >> /tmp/gpu-stash/cu13.tar.xz
# && . .gpu/gpu-env.sh` (gpu-env.sh unpacks the stash; done so on 2026-12-02).
# AGAIN=1 measures the same commits once more on the same machine (for the spread between two
# whole runs): the previous run's results and records move to /tmp/ab-previous/<time> first.
# A call that ends with the run still going brings back bench.log and records-so-far.tar (the
# records measured so far: tools/results_table.py --spread-records compares a run cut short).
# SHARD_TIMEOUT / STOP default to 540 / 360 s per shard, and to 1700 s for SHARDS=. (one shard
# is the whole run: a cold one took 949-1036 s).
set -u
if [ -n "${WAIT_S:-}" ]; then
  run=/tmp/ab-detached
  if [ ! -e "$run/started" ]; then
    mkdir -p "$run" && date +%s > "$run/started"
    # shellcheck disable=SC2016
    WAIT_S='' OUT=$run setsid bash -c 'bash tools/device-asv.sh > "$OUT/run.out" 2>&1; echo $? > "$OUT/rc"' \
      < /dev/null > /dev/null 2>&1 &
    echo "started the run detached ($run)"
  fi
  end=$(( $(date +%s) + WAIT_S ))
  while [ ! -e "$run/rc" ] && [ "$(date +%s)" -lt "$end" ]; do sleep 5; done
  echo "$(( $(date +%s) - $(cat "$run/started") )) s since the run started"
  grep -E "took|exited|stopped|measured|not clean" "$run/bench.log" 2>/dev/null | cut -c1-200
  if [ ! -e "$run/rc" ]; then  # what is measured so far comes back too: device time may end
    tail -3 "$run/bench.log" 2>/dev/null | cut -c1-200; cp "$run/bench.log" "$OUT/" 2>/dev/null
    (cd /tmp/ab && tar cf "$OUT/records-so-far.tar" records/*/*.jsonl 2>/dev/null)
    echo "still running: call again"; exit 0
  fi
  cat "$run/run.out"; cp "$run/bench.log" "$run/results.tar" "$OUT/" 2>/dev/null
  echo "run ended (exit $(cat "$run/rc"))"; rm -rf "$run"; exit 0
fi
if [ -z "${MACHINE:-}" ]; then  # one machine name per card model: histories never mix
  model=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oE '[ABHL][0-9]{2,3}' | head -1)
  [ -n "$model" ] || { echo "device-asv: unknown GPU model: set MACHINE"; exit 2; }
  MACHINE=$(echo "$model" | tr '[:upper:]' '[:lower:]')-x$(nvidia-smi -L | grep -c '^GPU')
fi
echo "machine: $MACHINE"
# shellcheck source=/dev/null
. .gpu/gpu-env.sh >/dev/null
if compgen -G ".carry/wheels/*.whl" > /dev/null; then  # optional: the image has pytest
  python3 -m pip install -q --no-index --no-deps --target /tmp/gpu-site .carry/wheels/*.whl 2>&1 | grep -v WARNING
fi
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True PYTHONUNBUFFERED=1
export ATTNBENCH_FA4_DISK_CACHE=${ATTNBENCH_FA4_DISK_CACHE:-1}  # as the GPU workflows
torchdir=$(python3 -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))")
export ATTNBENCH_HOST_SITE="$torchdir:$PYTHONPATH" VIRTUALENV_SYSTEM_SITE_PACKAGES=1
unset ASV_PYTHONPATH
if [ ! -d /tmp/ab ]; then git clone -q .carry/repo.bundle /tmp/ab && (cd /tmp/ab && git checkout -q main)
else git -C /tmp/ab fetch -q "$PWD/.carry/repo.bundle" '+refs/heads/*:refs/remotes/carried/*'; fi  # newer commits
here=$PWD; cd /tmp/ab && git log --oneline -1
export PYTHONPATH=/tmp/ab/src:$PYTHONPATH ATTNBENCH_RECORDS=/tmp/ab/records/$MACHINE
if [ "${AGAIN:-0}" = 1 ] && [ -d "results/$MACHINE" ]; then  # a second whole run, same commits
  keep=/tmp/ab-previous/$(date +%s) && mkdir -p "$keep"
  mv "results/$MACHINE" "$keep/" && { mv "records/$MACHINE" "$keep/records-$MACHINE" 2>/dev/null || true; }
  echo "the previous run's results are in $keep"
fi
[ -n "${SET:-}" ] && export ATTNBENCH_SET=$SET
[ -n "${IMPLS:-}" ] && export ATTNBENCH_IMPLS=$IMPLS
limit=540 stop=360
[ "${SHARDS:-}" = . ] && limit=1700 stop=1700  # the whole suite in one shard
args=()
for s in ${SHARDS:-}; do args+=(--shard "$s"); done
t0=$(date +%s)
python3 tools/ci/bench.py --machine "$MACHINE" --commits "${COMMITS:-HEAD}" \
  --shard-timeout "${SHARD_TIMEOUT:-$limit}" --stop-after "${STOP:-$stop}" "${args[@]}" > "$OUT/bench.log" 2>&1
echo "bench.py exited $? after $(( $(date +%s) - t0 )) s"
grep -E "took|exited|stopped|measured|not clean|shard\(s\)" "$OUT/bench.log" | cut -c1-200
tar cf "$OUT/results.tar" results records
nvidia-smi --query-gpu=clocks.sm,temperature.gpu --format=csv,noheader; cd "$here" || exit
