#!/usr/bin/env bash
# Restore benchmarks on real WAL, each against a baseline measured in the same run:
#  1. WAL replay through restore_command = walkeeper get-wal --prefetch 8 (the default
#     `restore --get-wal` writes) vs the same WAL already in pg_wal (read from pg_wal,
#     no restore_command at all), both stopping (paused) at the same target LSN through
#     the same recovery path — target: >= 0.8 of the local speed; also get-wal without
#     prefetch and restore_command = cp of plain files (--copy-wal), for reference.
#  2. walkeeper restore (parallel extraction + one sync) wall time for the base backup.
# Knobs: WAL_MB (WAL to replay, default 2048), SCALE (pgbench scale, default 20),
# PREFETCH (default 8), KEEP=1 (keep the work directory), REUSE=DIR (a work directory
# kept by an earlier run: replay its archive again with a fresh build, no new WAL).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
WAL_MB=${WAL_MB:-2048}
SCALE=${SCALE:-20}
PREFETCH=${PREFETCH:-8}
export PATH="/usr/local/go/bin:$PATH"
if [ -n "${REUSE:-}" ]; then
  work=$REUSE KEEP=1
else
  work=$(mktemp -d /tmp/walkeeper-bench-restore-XXXXXX)
fi
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
daemon_pid=""
cleanup() {
  for d in "$work"/pgdata "$work"/r-*; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
  # The daemon runs in its own process group (setsid): stop it and runuser together.
  [ -n "$daemon_pid" ] && { kill -- "-$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; } || true
  [ -n "${KEEP:-}" ] && { echo "kept $work"; return; }
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/walkeeper" ./cmd/walkeeper)
chmod 755 "$work/walkeeper"
wk="$work/walkeeper"
cfg="$work/wk.conf"
if [ -n "${REUSE:-}" ]; then
  port=$(cat "$work/port") end_lsn=$(cat "$work/end_lsn")
else
port=$(freeport)
echo "$port" > "$work/port"
cat > "$cfg" <<CONF
[walkeeper]
home = $work/home
[pg1]
conninfo = host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable
CONF
[ "$(id -u)" = 0 ] && chown postgres: "$cfg"

echo "== generating ~${WAL_MB} MiB of OLTP WAL with pgbench (scale $SCALE), archived by walkeeper"
as_pg "$PGBIN/initdb" -D "$work/pgdata" -U postgres -A trust -k --no-sync >/dev/null
cat >> "$work/pgdata/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
archive_mode = on
archive_command = '$wk --config $cfg archive-wal pg1 %p'
max_wal_size = 4GB
shared_buffers = 128MB
synchronous_commit = off
CONF
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -l "$work/pg.log" -w start >/dev/null
setsid bash -c "$(declare -f as_pg); as_pg '$wk' --config '$cfg' watch" >"$work/watch.log" 2>&1 &
daemon_pid=$!
psql() { as_pg "$PGBIN/psql" -X -A -t -q -h 127.0.0.1 -p "$port" -U postgres "$@" postgres; }
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
as_pg "$wk" --config "$cfg" backup pg1 >/dev/null
start_lsn=$(psql -c "SELECT pg_current_wal_lsn()")
while :; do
  # OLTP transactions, then a bulk update: both kinds of WAL a DBA replays.
  as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 4 -j 2 -T 15 postgres >/dev/null 2>&1
  psql -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 4 = 0" >/dev/null
  done_mb=$(psql -c "SELECT (pg_current_wal_lsn() - '$start_lsn'::pg_lsn) / 1048576")
  echo "   ${done_mb%.*} MiB of WAL so far"
  [ "${done_mb%.*}" -ge "$WAL_MB" ] && break
done
end_lsn=$(psql -c "SELECT pg_current_wal_insert_lsn()")
as_pg "$wk" --config "$cfg" switch-wal pg1 --wait --timeout 300s >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -m fast stop >/dev/null
nseg=$(ls "$work/home/pg1/wals"/*/ | grep -cE '^[0-9A-F]{24}(\.zst|\.gz)?$' || true)
echo "   $nseg segments archived"
echo "$end_lsn" > "$work/end_lsn"
fi

# restore_and_replay NAME MODE [PREFETCH]: restore the backup with a recovery target at
# the end of the workload (pause), start PostgreSQL and time it from start until replay
# is paused at the target. Both kinds of run take the same path through recovery, so
# only the WAL source differs:
#   local  - the WAL already sits in pg_wal (standby.signal, no restore_command: read
#            from pg_wal only)
#   getwal - restore_command = walkeeper get-wal [--prefetch N]
restore_and_replay() {
  local name=$1 mode=$2 dest="$work/r-$1"
  local t1 t2 state replayed
  case $mode in
    local)
      as_pg "$wk" --config "$cfg" restore pg1 latest "$dest" --copy-wal --target-lsn "$end_lsn" >/dev/null
      as_pg sh -c "mv '$dest'/pg_wal/walkeeper_wal/0* '$dest/pg_wal/' && rm -rf '$dest/pg_wal/walkeeper_wal' '$dest/recovery.signal' && touch '$dest/standby.signal'"
      echo "restore_command = ''" >> "$dest/postgresql.auto.conf"
      ;;
    getwal)
      as_pg "$wk" --config "$cfg" restore pg1 latest "$dest" --get-wal --prefetch "$3" --target-lsn "$end_lsn" >/dev/null
      ;;
    copywal)
      # restore --copy-wal as written: restore_command = 'cp pg_wal/walkeeper_wal/%f %p'
      # (plain files, no decompression): the cost of PostgreSQL's restore_command path.
      as_pg "$wk" --config "$cfg" restore pg1 latest "$dest" --copy-wal --target-lsn "$end_lsn" >/dev/null
      ;;
  esac
  cat >> "$dest/postgresql.auto.conf" <<CONF
hot_standby = on
archive_mode = off
max_wal_size = 4GB
CONF
  sync
  rm -f "$work/$name.log"
  t1=$(date +%s.%N)
  as_pg "$PGBIN/pg_ctl" -D "$dest" -l "$work/$name.log" -o "-p $((port + 1)) -k $work" -w -t 3600 start >/dev/null
  while :; do
    state=$(as_pg "$PGBIN/psql" -X -A -t -q -h "$work" -p $((port + 1)) -U postgres -c "SELECT pg_get_wal_replay_pause_state()" postgres 2>/dev/null || true)
    [ "$state" = paused ] && break
    sleep 0.05
  done
  t2=$(date +%s.%N)
  replayed=$(as_pg "$PGBIN/psql" -X -A -t -q -h "$work" -p $((port + 1)) -U postgres -c "SELECT pg_last_wal_replay_lsn()" postgres)
  as_pg "$PGBIN/pg_ctl" -D "$dest" -m immediate stop >/dev/null
  echo "$replayed" > "$work/$name.redo"
  grep -c 'restored log file' "$work/$name.log" > "$work/$name.restored" || true
  python3 -c "print(f'{$t2-$t1:.2f}')"
  rm -rf "$dest"
}

echo "== 1. replay of ${WAL_MB} MiB of WAL (each mode twice, interleaved; best of two counts: shared hosts are noisy)"
best() { python3 -c "import sys; print(min(map(float, sys.argv[1:])))" "$@"; }
r=()
for round in 1 2; do
  l=$(restore_and_replay local local); cp "$work/local.redo" "$work/local$round.redo"
  p=$(restore_and_replay getwal getwal "$PREFETCH"); cp "$work/getwal.redo" "$work/getwal$round.redo"
  n=$(restore_and_replay getwal0 getwal 0); cp "$work/getwal0.redo" "$work/getwal0$round.redo"
  c=$(restore_and_replay copywal copywal); cp "$work/copywal.redo" "$work/copywal$round.redo"
  echo "   round $round: local ${l}s, get-wal --prefetch $PREFETCH ${p}s, get-wal ${n}s, restore_command=cp (--copy-wal) ${c}s"
  r+=("$l" "$p" "$n" "$c")
done
t_local=$(best "${r[0]}" "${r[4]}"); t_pf=$(best "${r[1]}" "${r[5]}"); t_np=$(best "${r[2]}" "${r[6]}"); t_cp=$(best "${r[3]}" "${r[7]}")
for n in local getwal getwal0 copywal; do
  echo "   $n: paused at $(cat "$work/$n.redo") (target $end_lsn), $(cat "$work/$n.restored") files through restore_command"
done
if [ "$(sort -u "$work"/*.redo | wc -l)" != 1 ]; then
  echo "error: the runs did not stop at the same LSN" >&2; exit 1
fi
python3 - "$t_local" "$t_pf" "$t_np" "$t_cp" "$WAL_MB" <<'PY'
import sys
loc, pf, np, cp, mb = map(float, sys.argv[1:])
print(f"   best: local {loc:.2f}s, get-wal+prefetch {pf:.2f}s, get-wal {np:.2f}s, cp {cp:.2f}s")
print(f"   speed relative to local: prefetch {loc/pf:.2f}  (target >= 0.80),  no prefetch {loc/np:.2f},  cp {loc/cp:.2f}")
print(f"   get-wal+prefetch relative to restore_command=cp of plain files: {cp/pf:.2f}")
print(f"   replay rate: local {mb/loc:.0f} MiB/s, get-wal+prefetch {mb/pf:.0f} MiB/s, get-wal {mb/np:.0f} MiB/s, cp {mb/cp:.0f} MiB/s")
PY

echo "== 2. walkeeper restore of the base backup (parallel extraction, one sync)"
t0=$(date +%s.%N)
out=$(as_pg "$wk" --config "$cfg" --json restore pg1 latest "$work/r-extract")
t1=$(date +%s.%N)
python3 - "$t0" "$t1" "$out" <<'PY'
import json, sys
t0, t1 = float(sys.argv[1]), float(sys.argv[2])
r = json.loads(sys.argv[3])
mb = r["bytes"] / 1048576
print(f"   {r['files']} files, {mb:.0f} MiB restored and synced in {t1-t0:.2f}s ({mb/(t1-t0):.0f} MiB/s)")
PY
