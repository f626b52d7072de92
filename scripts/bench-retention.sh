#!/usr/bin/env bash
# Retention benchmark (issue 5): a plan and its application over a synthetic index of
# 1,000,000 WAL segments (records put straight into badger; no WAL files, so every
# object deletion meets a missing file, which retention tolerates). Four backups,
# REDUNDANCY 2 with the oldest pinned: 949,998 segments are deleted.
# Targets: plan + apply under 10 s, peak RSS under 200 MB.
#
# The figures come from BenchmarkRetention1M in internal/retention/bench_test.go:
#   plan-s / plan-cpu-s   dry run: open the index, BuildInput, Evaluate, count every range
#   apply-s / apply-cpu-s the real run: plan again, delete objects, drop index records
#   peak-RSS-MB           VmHWM of the process, reset (clear_refs 5) after building the
#                         synthetic index, so it covers opening the index, plan and apply
# The benchmark runs with the GC settings the retention command uses (retention.TuneGC).
# Wall time depends on the machine's load (printed); CPU time much less.
# Knobs: SEGMENTS (default 1000000), COUNT (runs, default 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH="/usr/local/go/bin:$PATH"
cd "$root"
WALKEEPER_BENCH_SEGMENTS=${SEGMENTS:-1000000} go test -run '^$' -bench 'BenchmarkRetention1M$' \
  -benchtime 1x -count "${COUNT:-1}" -timeout 30m ./internal/retention/
