#!/usr/bin/env bash
# make bench: walkeeper's archive benchmarks on real WAL, each against a baseline
# measured in the same run (these machines are noisy: read the ratios).
#  1. pipeline throughput (validate+zstd+store+index) vs cp of the same segments
#  2. drop-to-indexed latency p50/p99 through the real fsnotify watcher
#  3. archive-wal's cost per call vs cp + sync
# Other suites: scripts/bench-backup.sh, scripts/bench-restore.sh, scripts/bench-sync.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
SCALE=${SCALE:-20}
work=$(mktemp -d /tmp/walkeeper-bench-XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
cleanup() { as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

port=$(freeport)
mkdir -p "$work/wal"; [ "$(id -u)" = 0 ] && chown postgres: "$work/wal"
echo "== generating real OLTP WAL with pgbench (scale $SCALE)"
as_pg "$PGBIN/initdb" -D "$work/pgdata" -U postgres -A trust -k --no-sync >/dev/null
cat >> "$work/pgdata/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
archive_mode = on
archive_command = 'cp %p $work/wal/%f'
max_wal_size = 4GB
CONF
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -l "$work/pg.log" -w start >/dev/null
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 4 -T "${SECONDS_OLTP:-30}" postgres >/dev/null 2>&1
as_pg "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -c "SELECT pg_switch_wal()" postgres >/dev/null
sleep 3
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -m fast stop >/dev/null
nseg=$(ls "$work/wal" | grep -cE '^[0-9A-F]{24}$')
bytes=$(du -sb "$work/wal" | cut -f1)
echo "   $nseg segments, $((bytes / 1048576)) MiB"

echo "== 1. pipeline throughput, one worker per core, default zstd (vs cp + sync of the same files)"
sync
t0=$(date +%s.%N); mkdir -p "$work/cp"; cp "$work"/wal/* "$work/cp/"; sync; t1=$(date +%s.%N)
cp_mbs=$(python3 -c "print(round($bytes/1048576/($t1-$t0),1))")
out=$(cd "$root" && WALKEEPER_BENCH_WAL="$work/wal" go test -run '^$' -bench 'BenchmarkPipeline$' -benchtime 3x ./internal/ingest/ | grep -E '^Benchmark')
wk_mbs=$(echo "$out" | awk '{for(i=1;i<=NF;i++) if($(i+1)=="MB/s") print $i}')
wk_core=$(echo "$out" | awk '{for(i=1;i<=NF;i++) if($(i+1)=="MB/s/core") print $i}')
wk_cpu=$(echo "$out" | awk '{for(i=1;i<=NF;i++) if($(i+1)=="MB/cpu-s") print $i}')
echo "   walkeeper pipeline: $wk_mbs MB/s on $(nproc) cores ($wk_core MB/s per core by wall clock, $wk_cpu MB per CPU-second)"
echo "   cp+sync: $cp_mbs MB/s    ratio: $(python3 -c "print(round($wk_mbs/$cp_mbs,2))")"

echo "== 2. drop-to-indexed latency (archive-wal returned -> index commit, fsnotify watcher; 12 drops per segment so p99 is not just the maximum)"
(cd "$root" && WALKEEPER_BENCH_WAL="$work/wal" go test -run '^$' -bench 'BenchmarkDropToIndexed$' -benchtime "$((nseg * 12))x" ./internal/ingest/ | grep -E '^Benchmark' | sed 's/^/   /')

echo "== 3. archive-wal per call vs cp + sync (same segments, 16 MiB each, interleaved file by file)"
cfg="$work/wk.conf"; printf '[walkeeper]\nhome = %s/home\n[b]\nconninfo = host=127.0.0.1 port=1\n' "$work" > "$cfg"
mkdir -p "$work/cpsync"
# Interleaved, so a writeback burst or a noisy neighbour hits both sides alike.
sync
n=0; cp_ns=0; wk_ns=0
for f in "$work"/wal/*; do
  [ $n -ge 40 ] && break
  t0=$(date +%s%N); cp "$f" "$work/cpsync/"; sync "$work/cpsync/$(basename "$f")"; t1=$(date +%s%N)
  "$root/bin/walkeeper" --config "$cfg" archive-wal b "$f"; t2=$(date +%s%N)
  cp_ns=$((cp_ns + t1 - t0)); wk_ns=$((wk_ns + t2 - t1)); n=$((n+1))
done
python3 - "$cp_ns" "$wk_ns" "$n" <<'PY'
import sys
cp_ns,wk_ns,n=map(float,sys.argv[1:])
cp=cp_ns/n/1e6; wk=wk_ns/n/1e6
print(f"   archive-wal: {wk:.1f} ms/call    cp+sync: {cp:.1f} ms/call    ratio: {wk/cp:.2f}")
PY
