#!/usr/bin/env bash
# make demo: walkeeper's main job on a throwaway local PostgreSQL 15 cluster.
# It archives the cluster's WAL continuously, takes a base backup while pgbench writes,
# restores that backup to a point in time into a new data directory, starts it and
# checks that the data is there. Everything lives in one temp dir, removed at the end
# (KEEP=1 keeps it).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
PGBIN=${WALKEEPER_PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$PGBIN/postgres" ] || { echo "demo: PostgreSQL 15 not found in $PGBIN: run sudo scripts/setup.sh"; exit 1; }

work=$(mktemp -d /tmp/walkeeper-demo-XXXXXX)
chmod 755 "$work"
bin="$work/walkeeper"
cp "$root/bin/walkeeper" "$bin"
chmod 755 "$bin"

# PostgreSQL refuses to run as root: run it, and walkeeper, as the postgres user.
# setpriv execs in place (runuser would stay as a parent that does not pass on signals),
# so $! of a backgrounded command is the command itself.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"
  else
    "$@"
  fi
}
[ "$(id -u)" = 0 ] && chown postgres: "$work"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
port2=$((port + 1))
cfg="$work/walkeeper.conf"
cat > "$cfg" <<CONF
[walkeeper]
home = $work/home

[demo]
description = "walkeeper demo cluster"
conninfo = host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable
retention_policy = REDUNDANCY 2
CONF
[ "$(id -u)" = 0 ] && chown postgres: "$cfg"
wk() { as_pg "$bin" --config "$cfg" "$@"; }

cleanup() {
  set +e
  as_pg "$PGBIN/pg_ctl" -D "$work/restored" -m immediate stop >/dev/null 2>&1
  as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -m immediate stop >/dev/null 2>&1
  if [ -n "${watch_pid:-}" ]; then kill "$watch_pid" 2>/dev/null; wait "$watch_pid" 2>/dev/null; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "demo: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }

step "initdb a throwaway cluster (port $port) with archive_command = walkeeper archive-wal"
as_pg "$PGBIN/initdb" -D "$work/pgdata" -U postgres -A trust -k --no-sync >/dev/null
cat >> "$work/pgdata/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
wal_level = replica
archive_mode = on
archive_command = '$bin --config $cfg archive-wal demo %p'
max_wal_senders = 5
CONF
as_pg "$PGBIN/pg_ctl" -D "$work/pgdata" -l "$work/pg.log" -w start >/dev/null

step "start the daemon: walkeeper watch"
# Started directly (not through the as_pg function, which would fork a subshell), so that
# $! is the daemon itself and cleanup can wait for it to finish.
if [ "$(id -u)" = 0 ]; then
  HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups -- "$bin" --config "$cfg" watch 2>"$work/watch.log" &
else
  "$bin" --config "$cfg" watch 2>"$work/watch.log" &
fi
watch_pid=$!
for _ in $(seq 100); do [ -S "$work/home/walkeeper.sock" ] && break; sleep 0.1; done

psql() { as_pg "$PGBIN/psql" -X -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }

step "pgbench writes (scale 10)"
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p $port -U postgres -i -s 10 -q postgres 2>&1 | tail -1

step "walkeeper backup demo"
wk backup demo --name first
wk list-backups demo

step "more writes, then a mark we will recover to"
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p $port -U postgres -n -c 2 -T 5 postgres 2>&1 | grep -E "^tps" || true
psql $port "CREATE TABLE demo_mark AS SELECT now() AS at, (SELECT sum(abalance) FROM pgbench_accounts) AS total"
target=$(psql $port "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'")
want=$(psql $port "SELECT total FROM demo_mark")
sleep 1
psql $port "UPDATE pgbench_accounts SET abalance = abalance + 1000" >/dev/null
wk switch-wal demo --wait

step "walkeeper restore demo latest --target-time '$target'"
wk restore demo latest "$work/restored" --target-time "$target" --target-action promote
cat >> "$work/restored/postgresql.auto.conf" <<CONF
port = $port2
archive_mode = off
CONF
as_pg "$PGBIN/pg_ctl" -D "$work/restored" -l "$work/restored.log" -w -t 120 start >/dev/null
for _ in $(seq 100); do [ "$(psql $port2 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break; sleep 0.2; done
got=$(psql $port2 "SELECT total FROM demo_mark")
after=$(psql $port2 "SELECT sum(abalance) FROM pgbench_accounts")

step "status"
wk status demo

echo
if [ "$got" = "$want" ] && [ "$after" = "$want" ]; then
  echo "demo: OK — the restored cluster is exactly at the mark (sum of balances $want; the later update is not there)"
else
  echo "demo: FAILED — expected balance $want, restored mark $got, restored table $after"
  exit 1
fi
