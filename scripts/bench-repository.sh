#!/usr/bin/env bash
# Repository (object storage) benchmark, each figure against the local archive in the
# same run: a PostgreSQL 15 cluster (pgbench scale SCALE) archived by walkeeper, with an
# age-encrypted repository on a versitygw S3 server on loopback (its posix backend on
# the same disk as the local archive).
#   WAL upload: the daemon's uploader sending the archived WAL (WAL_MB of pgbench WAL)
#               vs `cp -r` of the same local WAL directory + sync
#   backup:     `walkeeper backup` with backup_local_copy = off (streamed to S3) vs a
#               local backup (interleaved, RUNS rounds)
#   restore:    `walkeeper restore latest` on a new, empty home with the same repository
#               (everything from S3) vs the same restore from the local home (interleaved)
#               target: >= 0.8 of the local speed (paired median)
# and the requests each operation sent (walkeeper -v logs them; the daemon's are in
# status). Environment: SCALE (20), WAL_MB (512), RUNS (2), WALKEEPER_PGBIN.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
SCALE=${SCALE:-20}
WAL_MB=${WAL_MB:-512}
RUNS=${RUNS:-2}
export PATH="/usr/local/go/bin:$PATH"
gw=${WALKEEPER_VERSITYGW:-${WALKEEPER_TOOLS_CACHE:-/var/cache/walkeeper}/versitygw/v1.8.0/versitygw}
[ -x "$gw" ] || { echo "bench-repository: no versitygw at $gw: run scripts/setup.sh" >&2; exit 1; }
work=$(mktemp -d /tmp/walkeeper-bench-repo-XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
daemon_pid="" gw_pid=""
cleanup() {
  for d in "$work"/pgdata; do
    [ -f "$d/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
  done
  [ -n "$daemon_pid" ] && { kill -- "-$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; } || true
  # $gw_pid is the subshell that ran as_pg: the server is its child.
  [ -n "$gw_pid" ] && { pkill -f "posix $work/s3" 2>/dev/null; kill "$gw_pid" 2>/dev/null; } || true
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

(cd "$root" && go build -o "$work/walkeeper" ./cmd/walkeeper)
chmod 755 "$work/walkeeper"
wk="$work/walkeeper"

# The S3 server.
s3port=$(freeport) ak=AK$RANDOM$RANDOM sk=SK$RANDOM$RANDOM$RANDOM
as_pg mkdir -p "$work/s3/bench"
as_pg "$gw" --access "$ak" --secret "$sk" --port "127.0.0.1:$s3port" --quiet posix "$work/s3" >"$work/s3.log" 2>&1 & # a directory is a bucket
gw_pid=$!
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$s3port) 2>/dev/null && break; sleep 0.1; done
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$ak" "$sk" > "$work/credentials"
chmod 600 "$work/credentials"; [ "$(id -u)" = 0 ] && chown postgres: "$work/credentials"
port=$(freeport)
conf() { # conf FILE HOME BACKUP_LOCAL_COPY
  cat > "$1" <<CONF
[walkeeper]
home = $2
[pg1]
conninfo = host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable
repository = s3://bench/walkeeper
repository_endpoint = http://127.0.0.1:$s3port
repository_region = us-east-1
repository_path_style = on
repository_credentials_file = $work/credentials
encryption = age
encryption_key_file = $work/age.key
backup_local_copy = $3
CONF
  [ "$(id -u)" = 0 ] && chown postgres: "$1" || true
}
local_cfg=$work/local.conf       # the archive on this host, uploaded to the repository
direct_cfg=$work/direct.conf     # backups streamed to the repository (backup_local_copy = off)
new_cfg=$work/new.conf           # a new backup host: empty home, the same repository
conf "$local_cfg" "$work/home" on
conf "$direct_cfg" "$work/home" off
conf "$new_cfg" "$work/newhome" on
as_pg "$wk" --config "$local_cfg" repository-init pg1 # creates the key file

echo "== a pgbench cluster (scale $SCALE) with ~${WAL_MB} MiB of WAL, archived locally (no daemon uploading yet)"
as_pg "$PGBIN/initdb" -D "$work/pgdata" -U postgres -A trust -k --no-sync >/dev/null
cat >> "$work/pgdata/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
archive_mode = on
archive_command = '$wk --config $work/noupload.conf archive-wal pg1 %p'
max_wal_size = 4GB
synchronous_commit = off
CONF
printf '[walkeeper]\nhome = %s\n[pg1]\nconninfo = host=127.0.0.1 port=%s user=postgres dbname=postgres sslmode=disable\n' "$work/home" "$port" > "$work/noupload.conf"
[ "$(id -u)" = 0 ] && chown postgres: "$work/noupload.conf"
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -l "$work/pg.log" -w start >/dev/null
start_daemon() { # start_daemon CONFIG
  setsid bash -c "$(declare -f as_pg); as_pg '$wk' --config '$1' watch" >>"$work/watch.log" 2>&1 &
  daemon_pid=$!
}
stop_daemon() { kill -- "-$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""; }
psql() { as_pg "$PGBIN/psql" -X -A -t -q -h 127.0.0.1 -p "$port" -U postgres "$@" postgres; }
start_daemon "$work/noupload.conf"
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
start_lsn=$(psql -c "SELECT pg_current_wal_lsn()")
while :; do
  as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 4 -j 2 -T 10 postgres >/dev/null 2>&1
  done_mb=$(psql -c "SELECT (pg_current_wal_lsn() - '$start_lsn'::pg_lsn) / 1048576")
  [ "${done_mb%.*}" -ge "$WAL_MB" ] && break
done
as_pg "$wk" --config "$work/noupload.conf" switch-wal pg1 --wait --timeout 300s >/dev/null
stop_daemon
walbytes=$(du -sb "$work/home/pg1/wals" | cut -f1)
nfiles=$(find "$work/home/pg1/wals" -type f | wc -l)
echo "   $nfiles archived files, $((walbytes / 1048576)) MiB stored"

status_json() { as_pg "$wk" --config "$local_cfg" --json status pg1; }
upload_field() { status_json | python3 -c "import json,sys; u=(json.load(sys.stdin).get('repository') or {}).get('upload') or {}; print(u.get('$1', ''))"; }
echo "== WAL upload: the uploader sending the archived WAL vs cp -r of the WAL directory + sync"
t0=$(now)
as_pg cp -r "$work/home/pg1/wals" "$work/walcopy"; sync
t1=$(now); cp_s=$(secs "$t0" "$t1"); rm -rf "$work/walcopy"
t0=$(now)
start_daemon "$local_cfg"
while :; do
  [ "$(upload_field scanned)" = True ] && [ "$(upload_field pending)" = 0 ] && [ "$(upload_field uploaded)" -ge "$nfiles" ] 2>/dev/null && break
  sleep 0.2
done
t1=$(now); up_s=$(secs "$t0" "$t1")
reqs=$(status_json | python3 -c "import json,sys; print(json.load(sys.stdin)['repository']['upload'].get('requests'))")
echo "   upload $up_s s ($((walbytes / 1048576)) MiB, $nfiles files), cp -r + sync $cp_s s: upload speed $(python3 -c "print(f'{$cp_s/$up_s:.2f}')") of the local copy; requests: $reqs"

echo "== backup: streamed to S3 (backup_local_copy = off) vs local, $RUNS rounds interleaved"
declare -a bs bl
for r in $(seq "$RUNS"); do
  for m in s3 local; do
    [ $((r % 2)) = 0 ] && m=$([ $m = s3 ] && echo local || echo s3)
    cfg=$local_cfg; [ $m = s3 ] && cfg=$direct_cfg
    t0=$(now); as_pg "$wk" --config "$cfg" -v backup pg1 >"$work/backup-$m.out" 2>"$work/backup-$m.log"; t1=$(now)
    t=$(secs "$t0" "$t1")
    if [ $m = s3 ]; then bs+=("$t"); else bl+=("$t"); fi
  done
done
echo "   streamed to S3: ${bs[*]} s; local: ${bl[*]} s; requests of the last S3 backup: $(grep -o 'repository requests.*' "$work/backup-s3.log" | tail -1)"

echo "== restore latest: from S3 alone (a new home) vs from the local home, $RUNS rounds interleaved"
stop_daemon
as_pg "$wk" --config "$new_cfg" index rebuild pg1 >/dev/null
declare -a rs rl
for r in $(seq "$RUNS"); do
  for m in s3 local; do
    [ $((r % 2)) = 0 ] && m=$([ $m = s3 ] && echo local || echo s3)
    cfg=$local_cfg; [ $m = s3 ] && cfg=$new_cfg
    dest=$work/restored-$m-$r
    t0=$(now); as_pg "$wk" --config "$cfg" -v restore pg1 latest "$dest" >/dev/null 2>"$work/restore-$m.log"; t1=$(now)
    t=$(secs "$t0" "$t1")
    if [ $m = s3 ]; then rs+=("$t"); else rl+=("$t"); fi
  done
done
rm -rf "$work"/restored-*
python3 - "${rs[*]}" "${rl[*]}" "${bs[*]}" "${bl[*]}" <<'PY'
import statistics, sys
rs, rl, bs, bl = ([float(x) for x in a.split()] for a in sys.argv[1:5])
sp = [l / s for s, l in zip(rs, rl)]
bp = [l / s for s, l in zip(bs, bl)]
print(f"   restore from S3 {min(rs):.2f} s, local {min(rl):.2f} s (best); speed of the S3 restore, paired median: {statistics.median(sp):.2f} (rounds " + " ".join(f"{x:.2f}" for x in sp) + ") (>= 0.8)")
print(f"   backup streamed to S3: speed {statistics.median(bp):.2f} of the local backup, paired median (rounds " + " ".join(f"{x:.2f}" for x in bp) + ")")
PY
echo "   requests of the last S3 restore: $(grep -o 'repository requests.*' "$work/restore-s3.log" | tail -1)"

echo "== retention: REDUNDANCY 1 on the repository"
sed -i 's/^backup_local_copy = on$/backup_local_copy = on\nretention_policy = REDUNDANCY 1/' "$local_cfg"
t0=$(now); as_pg "$wk" --config "$local_cfg" -v retention pg1 >"$work/retention.out" 2>"$work/retention.log"; t1=$(now)
echo "   $(grep -c . "$work/retention.out") lines of report in $(secs "$t0" "$t1") s; requests: $(grep -o 'repository requests.*' "$work/retention.log" | tail -1)"
