#!/usr/bin/env bash
# The S3 store's throughput against the local store on the same disk, in one run: Put and
# Get of 16 MiB objects (WAL-sized) and of one 1 GiB object (a backup), through
# internal/storage/s3store's BenchmarkThroughput on a versitygw server the harness starts
# (scripts/setup.sh builds it). Read the ratios: these machines are noisy.
#   BENCH_S3_OBJECTS=32 BENCH_S3_LARGE_MIB=1024 BENCH_S3_PART_MIB=32 scripts/bench-s3.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
echo "== S3 store vs local store: put/get throughput"
go test -count=1 -run '^$' -bench '^BenchmarkThroughput$' -benchtime 1x -timeout 30m ./internal/storage/s3store/ |
  grep -vE '^(goos|goarch|pkg|cpu|BenchmarkThroughput|PASS|ok )'
