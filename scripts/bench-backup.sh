#!/usr/bin/env bash
# Base backup benchmark: `walkeeper backup` against pg_basebackup (plain -Fp, and
# -Ft --compress=client-zstd:3) and pgbackrest (if installed: apt-get install pgbackrest),
# on the same pgbench cluster in one run, hot cache, each method RUNS times.
# Target: walkeeper faster than pg_basebackup -Ft --compress=client-zstd:3 at no larger
# size. Restore side: extracting that tar (tar --zstd -xf) against `walkeeper restore`.
#
# All methods take a fast checkpoint and no WAL (-X none; walkeeper's WAL comes from its
# archive, pgbackrest's from its archive too), write a manifest and fsync their output.
#
# Environment: SCALE (pgbench scale, default 50), RUNS (default 2), WK_LEVELS (walkeeper
# backup_compression_level values to run, default "3 6"), WALKEEPER_PGBIN.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
SCALE=${SCALE:-50}
RUNS=${RUNS:-2}
WK_LEVELS=${WK_LEVELS:-3 6}
export PATH="/usr/local/go/bin:$PATH"
work=$(mktemp -d /tmp/walkeeper-bench-backup-XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
daemon_pid=""
cleanup() {
  for d in "$work"/pgdata "$work"/restored; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$(freeport)
conn="host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable"
psqlc() { as_pg "$PGBIN/psql" -X -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "$1"; }
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
mib() { python3 -c "print(f'{$1/1048576:.1f}')"; }
results=()
cpu=""
# timed CMD...: runs CMD as the PostgreSQL user and leaves its CPU seconds (user+sys of
# the client only; the server's walsender is not counted) in $cpu.
timed() {
  local tf; tf=$(mktemp); chmod 666 "$tf"
  as_pg /usr/bin/time -o "$tf" -f '%U %S' "$@"
  cpu=$(awk '{printf "%.2f", $1 + $2}' "$tf"); rm -f "$tf"
}
record() { # label seconds bytes
  results+=("$(printf '%-46s %8s s %10s MiB   client CPU %6s s' "$1" "$2" "$(mib "$3")" "$cpu")")
  printf '   %-46s %8s s %10s MiB   client CPU %6s s\n' "$1" "$2" "$(mib "$3")" "$cpu"
}

echo "== building walkeeper"
(cd "$root" && go build -o "$work/walkeeper" ./cmd/walkeeper)
chmod 755 "$work/walkeeper"
wk="$work/walkeeper --config $work/walkeeper.conf"
cat > "$work/walkeeper.conf" <<CONF
[walkeeper]
home = $work/home
[pg1]
conninfo = $conn
CONF
[ "$(id -u)" = 0 ] && chown postgres: "$work/walkeeper.conf"

echo "== cluster (port $port), pgbench -i -s $SCALE"
as_pg "$PGBIN/initdb" -D "$work/pgdata" -U postgres -A trust -k --no-sync >/dev/null
cat >> "$work/pgdata/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
wal_level = replica
max_wal_senders = 10
max_wal_size = 4GB
archive_mode = on
archive_command = '$wk archive-wal pg1 %p'
CONF
echo "host replication all 127.0.0.1/32 trust" >> "$work/pgdata/pg_hba.conf"
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -l "$work/pg.log" -w start >/dev/null
as_pg $wk watch > "$work/watch.log" 2>&1 &
daemon_pid=$!
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
psqlc "CHECKPOINT"
as_pg $wk switch-wal pg1 --wait --timeout 120s >/dev/null
echo "   data directory: $(du -sh "$work/pgdata" | cut -f1) ($(psqlc "SELECT pg_size_pretty(sum(pg_database_size(oid))) FROM pg_database") in databases)"
# Warm the cache once so every method reads from memory.
cat "$work"/pgdata/base/*/* > /dev/null 2>&1 || true

have_pgbackrest=0
if command -v pgbackrest >/dev/null 2>&1; then
  have_pgbackrest=1
  mkdir -p "$work/pgbr/repo" "$work/pgbr/log" "$work/pgbr/spool"
  cat > "$work/pgbr/pgbackrest.conf" <<CONF
[global]
repo1-path=$work/pgbr/repo
log-path=$work/pgbr/log
spool-path=$work/pgbr/spool
lock-path=$work/pgbr/lock
compress-type=zst
compress-level=3
process-max=$(nproc)
start-fast=y
archive-check=n
repo1-retention-full=100
[bench]
pg1-path=$work/pgdata
pg1-port=$port
pg1-host-user=postgres
pg1-socket-path=$work
CONF
  [ "$(id -u)" = 0 ] && chown -R postgres: "$work/pgbr"
  if ! as_pg pgbackrest --config="$work/pgbr/pgbackrest.conf" --stanza=bench stanza-create >"$work/pgbr/stanza.log" 2>&1; then
    echo "   pgbackrest stanza-create failed, skipping pgbackrest:"; sed 's/^/     /' "$work/pgbr/stanza.log"
    have_pgbackrest=0
  fi
else
  echo "   pgbackrest not installed (apt-get install -y pgbackrest): skipped"
fi

echo "== backups (best of $RUNS runs each is what counts; every run is shown)"
for run in $(seq 1 "$RUNS"); do
  out="$work/out-$run"; mkdir -p "$out"; [ "$(id -u)" = 0 ] && chown postgres: "$out"

  for level in $WK_LEVELS; do
    sed -i '/^backup_compression_level/d' "$work/walkeeper.conf"
    echo "backup_compression_level = $level" >> "$work/walkeeper.conf"
    t0=$(now)
    timed $wk backup pg1 --wait-timeout 300s > "$work/wk-backup.log"
    t1=$(now)
    id=$(as_pg $wk --json show-backup pg1 latest | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    record "walkeeper backup (zstd $level, $(nproc) jobs) #$run" "$(secs "$t0" "$t1")" "$(du -sb "$work/home/pg1/base/$id" | cut -f1)"
  done

  t0=$(now)
  timed "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D "$out/plain" -Fp -X none -c fast
  t1=$(now)
  record "pg_basebackup -Fp #$run" "$(secs "$t0" "$t1")" "$(du -sb "$out/plain" | cut -f1)"
  rm -rf "$out/plain"

  t0=$(now)
  timed "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D "$out/tar" -Ft -X none -c fast --compress=client-zstd:3
  t1=$(now)
  record "pg_basebackup -Ft --compress=client-zstd:3 #$run" "$(secs "$t0" "$t1")" "$(du -sb "$out/tar" | cut -f1)"

  if [ "$have_pgbackrest" = 1 ]; then
    before=$(du -sb "$work/pgbr/repo/backup" 2>/dev/null | cut -f1 || echo 0)
    t0=$(now)
    timed pgbackrest --config="$work/pgbr/pgbackrest.conf" --stanza=bench --type=full backup >"$work/pgbr/backup.log" 2>&1 \
      || { echo "   pgbackrest backup failed:"; tail -5 "$work/pgbr/backup.log"; have_pgbackrest=0; }
    t1=$(now)
    if [ "$have_pgbackrest" = 1 ]; then
      after=$(du -sb "$work/pgbr/repo/backup" | cut -f1)
      record "pgbackrest full (zst 3, process-max $(nproc)) #$run" "$(secs "$t0" "$t1")" "$((after - before))"
    fi
  fi
done

echo "== restore side"
for run in $(seq 1 "$RUNS"); do
  rm -rf "$work/x"; mkdir -p "$work/x"; [ "$(id -u)" = 0 ] && chown postgres: "$work/x"
  t0=$(now)
  timed sh -c "tar --zstd -xf '$work/out-1/tar/base.tar.zst' -C '$work/x' && sync -f '$work/x'"
  t1=$(now)
  record "tar --zstd -xf base.tar.zst (+ sync) #$run" "$(secs "$t0" "$t1")" "$(du -sb "$work/x" | cut -f1)"
  rm -rf "$work/x"
  if as_pg $wk restore --help >/dev/null 2>&1; then
    rm -rf "$work/restored"
    t0=$(now)
    timed $wk restore pg1 latest "$work/restored" > "$work/wk-restore.log" 2>&1 || { echo "   walkeeper restore failed:"; tail -5 "$work/wk-restore.log"; }
    t1=$(now)
    record "walkeeper restore latest #$run" "$(secs "$t0" "$t1")" "$(du -sb "$work/restored" 2>/dev/null | cut -f1 || echo 0)"
    rm -rf "$work/restored"
  fi
done

echo
echo "== summary (scale $SCALE, $(nproc) cores)"
printf '%s\n' "${results[@]}"
