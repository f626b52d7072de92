#!/usr/bin/env bash
# Commit latency with walkeeper as the synchronous standby, against a real PostgreSQL
# standby as the synchronous standby, measured in one run on the same primary
# (synchronous_commit = on, pgbench simple-update). Target: walkeeper <= 1.2x.
#
#   warm-up  no synchronous standby
#   phase 1  a streaming PostgreSQL standby (pg_basebackup -R) is synchronous_standby_names
#   phase 2  `walkeeper watch` with streaming_archiver = on is synchronous_standby_names
#            (the full daemon: receiver plus validate/compress/index of every segment)
#   phase 3  `walkeeper receive-wal` alone (receiver only, like the standby which only
#            receives and replays)
#
# The phases run ROUNDS times, interleaved, and the means are compared: these machines
# are noisy, and interleaving spreads the noise over all three.
#
# Environment: CLIENTS (4), SECONDS_RUN (15), ROUNDS (2), SCALE (10), WALKEEPER_PGBIN.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
CLIENTS=${CLIENTS:-4}
SECS=${SECONDS_RUN:-15}
ROUNDS=${ROUNDS:-2}
SCALE=${SCALE:-10}
work=$(mktemp -d /tmp/walkeeper-bench-sync-XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
wkpid=""
cleanup() {
  [ -n "$wkpid" ] && kill "$wkpid" 2>/dev/null && wait "$wkpid" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$work/standby" -m immediate stop >/dev/null 2>&1 || true
  as_pg "$PGBIN/pg_ctl" -D "$work/primary" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
pport=$(freeport); sport=$(freeport)
psqlp() { as_pg "$PGBIN/psql" -X -qAt -h 127.0.0.1 -p "$pport" -U postgres -d postgres -c "$1"; }
waitfor() { # sql want seconds
  for _ in $(seq 1 $(( $3 * 10 ))); do [ "$(psqlp "$1" 2>/dev/null || true)" = "$2" ] && return 0; sleep 0.1; done
  echo "timed out waiting for: $1 = $2" >&2; return 1
}
bench() { # label
  local out lat tps
  out=$(as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$pport" -U postgres -n -b simple-update -c "$CLIENTS" -j 2 -T "$SECS" postgres 2>&1)
  lat=$(echo "$out" | awk -F'= ' '/^latency average/ {print $2}' | awk '{print $1}')
  tps=$(echo "$out" | awk -F'= ' '/^tps/ {print $2}' | awk '{print $1}')
  printf '   %-44s latency avg %8s ms   tps %8s\n' "$1" "$lat" "$tps" >&2
  echo "$lat"
}

echo "== building walkeeper"
(cd "$root" && go build -o "$work/walkeeper" ./cmd/walkeeper)
chmod 755 "$work/walkeeper"

echo "== primary (port $pport) and a streaming standby (port $sport), pgbench scale $SCALE"
as_pg "$PGBIN/initdb" -D "$work/primary" -U postgres -A trust -k --no-sync >/dev/null
cat >> "$work/primary/postgresql.conf" <<CONF
port = $pport
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
max_wal_size = 4GB
wal_keep_size = 2GB
synchronous_commit = on
synchronous_standby_names = ''
CONF
echo "host replication all 127.0.0.1/32 trust" >> "$work/primary/pg_hba.conf"
as_pg "$PGBIN/pg_ctl" -D "$work/primary" -l "$work/primary.log" -w start >/dev/null
as_pg "$PGBIN/pgbench" -h 127.0.0.1 -p "$pport" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres -D "$work/standby" -R -X stream -c fast --no-sync
cat >> "$work/standby/postgresql.conf" <<CONF
port = $sport
unix_socket_directories = '$work'
hot_standby = on
CONF
# pg_basebackup -R put primary_conninfo in postgresql.auto.conf, which wins: name it there.
echo "primary_conninfo = 'host=127.0.0.1 port=$pport user=postgres application_name=standby1'" >> "$work/standby/postgresql.auto.conf"
as_pg "$PGBIN/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w start >/dev/null

cfg="$work/walkeeper.conf"
cat > "$cfg" <<CONF
[walkeeper]
home = $work/home
[pg1]
conninfo = host=127.0.0.1 port=$pport user=postgres dbname=postgres sslmode=disable
streaming_archiver = on
create_slot = auto
CONF
[ "$(id -u)" = 0 ] && chown postgres: "$cfg"
sync_to() { psqlp "ALTER SYSTEM SET synchronous_standby_names = '$1'"; psqlp "SELECT pg_reload_conf()" >/dev/null; }
start_wk() { # command...
  if [ "$(id -u)" = 0 ]; then HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups -- "$work/walkeeper" --config "$cfg" "$@" 2>>"$work/walkeeper.log" &
  else "$work/walkeeper" --config "$cfg" "$@" 2>>"$work/walkeeper.log" & fi
  wkpid=$!
  waitfor "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'walkeeper'" sync 60
}
stop_wk() { kill "$wkpid"; wait "$wkpid" || true; wkpid=""; }

echo "== pgbench -b simple-update -c $CLIENTS -T $SECS, synchronous_commit = on, $ROUNDS rounds (phases interleaved)"
bench "warm-up, no synchronous standby" >/dev/null
pg_l=(); wk_l=(); rcv_l=()
for round in $(seq 1 "$ROUNDS"); do
  as_pg "$PGBIN/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w start >/dev/null 2>&1 || true
  sync_to standby1
  waitfor "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'" sync 60
  pg_l+=("$(bench "round $round: PostgreSQL standby synchronous")")
  as_pg "$PGBIN/pg_ctl" -D "$work/standby" -m fast -w stop >/dev/null

  sync_to walkeeper
  start_wk watch
  wk_l+=("$(bench "round $round: walkeeper watch synchronous")")
  stop_wk
  start_wk receive-wal pg1
  rcv_l+=("$(bench "round $round: walkeeper receive-wal synchronous")")
  stop_wk
done

python3 - "${pg_l[*]}" "${wk_l[*]}" "${rcv_l[*]}" <<'PY'
import sys
pg, wk, rcv = ([float(x) for x in a.split()] for a in sys.argv[1:])
m = lambda l: sum(l) / len(l)
print(f"== mean latency: PostgreSQL standby {m(pg):.3f} ms, walkeeper watch {m(wk):.3f} ms, walkeeper receive-wal {m(rcv):.3f} ms")
print(f"== ratio walkeeper watch / PostgreSQL standby:       {m(wk)/m(pg):.2f}x (target <= 1.2x)")
print(f"== ratio walkeeper receive-wal / PostgreSQL standby: {m(rcv)/m(pg):.2f}x")
PY
