#!/usr/bin/env bash
# Restore benchmarks on real WAL, each against a baseline measured in the same run:
#  1. WAL replay through restore_command = walkeeper get-wal --prefetch 8 (the default
#     `restore --get-wal` writes) vs the same WAL already in pg_wal (read from pg_wal,
#     no restore_command at all), both stopping (paused) at the same target LSN through
#     the same recovery path — target: >= 0.95 of the local speed and no slower than
#     restore_command = cp of plain files; also get-wal without
#     prefetch and restore_command = cp of plain files (--copy-wal), for reference.
#     Mode getwalssh is the remote restore of issue 14: restore_command = walkeeper get-wal
#     --ssh "ssh ... @backup" --prefetch N (the binary on the restored host, the archive
#     read through ssh: one session to the backup host's send-wal streams the segments
#     still compressed), through a private sshd on a loopback port with key
#     authentication, against getwal (the same restore with the archive on this host).
#     Both hosts are this machine and the same OS user (postgres) here: what it measures
#     is the ssh transport and the remote prefetch, not a network.
#  2. walkeeper restore (parallel extraction + one sync) wall time for the base backup.
# Knobs: WAL_MB (WAL to replay, default 2048), SCALE (pgbench scale, default 20),
# PREFETCH (default 8), MODES (default "local getwal getwal0 copywal"; also "false": the WAL
# in pg_wal through archive recovery with restore_command = false, and "getwalssh", which
# needs root and /usr/sbin/sshd), ROUNDS (default 2),
# EXTRA_CONF (lines added to each replay's postgresql.auto.conf), KEEP=1 (keep the work directory), REUSE=DIR (a work directory
# kept by an earlier run: replay its archive again with a fresh build, no new WAL).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
WAL_MB=${WAL_MB:-2048}
SCALE=${SCALE:-20}
PREFETCH=${PREFETCH:-8}
MODES=${MODES:-local getwal getwal0 copywal}
ROUNDS=${ROUNDS:-2}
export PATH="/usr/local/go/bin:$PATH"
if [ -n "${REUSE:-}" ]; then
  work=$REUSE KEEP=1
else
  work=$(mktemp -d /tmp/walkeeper-bench-restore-XXXXXX)
fi
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres: "$work"
daemon_pid="" sshd_pid=""
cleanup() {
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null || true
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

# start_sshd: a private sshd on a loopback port that lets the postgres user in with a
# key of its own (getwalssh); sets sshcmd, the --wal-ssh-command of the restore.
start_sshd() {
  [ "$(id -u)" = 0 ] && [ -x /usr/sbin/sshd ] || { echo "bench-restore: mode getwalssh needs root and /usr/sbin/sshd (scripts/setup.sh installs it)" >&2; exit 1; }
  local p; p=$(freeport)
  mkdir -p "$work/sshd"; chown postgres: "$work/sshd"
  rm -f "$work/sshd/key" "$work/sshd/key.pub"
  as_pg ssh-keygen -q -t ed25519 -N "" -f "$work/sshd/key"
  private_sshd "$work/sshd" "$p" postgres "$work/sshd/key.pub"
  sshcmd="ssh -i $work/sshd/key -p $p -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR postgres@127.0.0.1"
  for _ in $(seq 1 50); do as_pg $sshcmd true 2>/dev/null && return; sleep 0.1; done
  echo "bench-restore: the private sshd does not let postgres in (see $work/sshd/log)" >&2; exit 1
}
case " $MODES " in *" getwalssh "*) start_sshd ;; esac

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
  rm -rf "$dest" # left by an interrupted run (REUSE)
  case $mode in
    local)
      as_pg "$wk" --config "$cfg" restore pg1 latest "$dest" --copy-wal --target-lsn "$end_lsn" >/dev/null
      as_pg sh -c "mv '$dest'/pg_wal/walkeeper_wal/0* '$dest/pg_wal/' && rm -rf '$dest/pg_wal/walkeeper_wal' '$dest/recovery.signal' && touch '$dest/standby.signal'"
      echo "restore_command = ''" >> "$dest/postgresql.auto.conf"
      ;;
    false)
      # The WAL in pg_wal as for local, but through archive recovery with
      # restore_command = false: what PostgreSQL's own call of a restore_command that
      # does nothing costs per segment (a fork of the startup process and a shell),
      # the floor of any restore_command.
      as_pg "$wk" --config "$cfg" restore pg1 latest "$dest" --copy-wal --target-lsn "$end_lsn" >/dev/null
      as_pg sh -c "mv '$dest'/pg_wal/walkeeper_wal/0* '$dest/pg_wal/' && rm -rf '$dest/pg_wal/walkeeper_wal'"
      echo "restore_command = 'false'" >> "$dest/postgresql.auto.conf"
      ;;
    getwal)
      as_pg "$wk" --config "$cfg" restore pg1 latest "$dest" --get-wal --prefetch "$3" --target-lsn "$end_lsn" >/dev/null
      ;;
    getwalssh)
      as_pg "$wk" --config "$cfg" restore pg1 latest "$dest" --get-wal --prefetch "$3" --target-lsn "$end_lsn" \
        --wal-ssh-command "$sshcmd" --remote-walkeeper "$wk" >/dev/null
      grep -q -- "get-wal --ssh" "$dest/postgresql.auto.conf" || { echo "bench-restore: getwalssh: restore wrote no get-wal --ssh restore_command" >&2; exit 1; }
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
${EXTRA_CONF:-}
CONF
  sync
  # Memory the guest has used before (lib.sh prefault) for the WAL: the modes that
  # write it before the clock starts (local, false, copywal) paid its first touch
  # untimed, the prefetcher during the replay.
  prefault "$work" "$((WAL_MB + 512))"
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
  # CPU seconds of the startup process (replay) and of the restore_command processes it
  # waited for: unlike wall time, barely moved by what else runs on the host.
  pm=$(head -1 "$dest/postmaster.pid")
  st=$(ps -o pid=,args= --ppid "$pm" | awk '/postgres: startup/ {print $1}')
  [ -n "$st" ] && awk -v t="$(getconf CLK_TCK)" '{printf "%.1f %.1f", ($14+$15)/t, ($16+$17)/t}' "/proc/$st/stat" > "$work/$name.cpu"
  # schedstat: time the startup process waited for a core (run queue), in seconds; the
  # rest of its wall time off a core is sleep (I/O, the restore_command it waits for).
  [ -n "$st" ] && awk '{printf " %.1f\n", $2/1e9}' "/proc/$st/schedstat" >> "$work/$name.cpu"
  as_pg "$PGBIN/pg_ctl" -D "$dest" -m immediate stop >/dev/null
  echo "$replayed" > "$work/$name.redo"
  grep -c 'restored log file' "$work/$name.log" > "$work/$name.restored" || true
  python3 -c "print(f'{$t2-$t1:.2f}')"
  rm -rf "$dest"
}

echo "== 1. replay of ${WAL_MB} MiB of WAL (each mode $ROUNDS times, interleaved, every other round reversed; paired per round; shared hosts are noisy)"
declare -A best label times
label=([local]="WAL in pg_wal" [false]="WAL in pg_wal, restore_command=false" [getwal]="get-wal --prefetch $PREFETCH" [getwal0]="get-wal (no prefetch)" [getwalssh]="get-wal --ssh --prefetch $PREFETCH" [copywal]="restore_command=cp of plain files (--copy-wal)")
for round in $(seq "$ROUNDS"); do
  line="   round $round:"
  # Every other round in reverse order, so that a load that rises or falls during the
  # run does not favour the modes measured first.
  order=$MODES
  [ $((round % 2)) = 0 ] && order=$(echo "$MODES" | tr ' ' '\n' | tac | tr '\n' ' ')
  for m in $order; do
    case $m in
      local) t=$(restore_and_replay local local) ;;
      false) t=$(restore_and_replay false false) ;;
      getwal) t=$(restore_and_replay getwal getwal "$PREFETCH") ;;
      getwal0) t=$(restore_and_replay getwal0 getwal 0) ;;
      getwalssh) t=$(restore_and_replay getwalssh getwalssh "$PREFETCH") ;;
      copywal) t=$(restore_and_replay copywal copywal) ;;
      *) echo "unknown mode $m" >&2; exit 2 ;;
    esac
    cp "$work/$m.redo" "$work/$m$round.redo"
    best[$m]=$(python3 -c "import sys; print(min(map(float, sys.argv[1:])))" "$t" ${best[$m]:-})
    times[$m]="${times[$m]:-} $t"
    line="$line ${label[$m]} ${t}s,"
  done
  echo "${line%,}"
done
for m in $MODES; do
  read -r cpu_s cpu_c runq < "$work/$m.cpu" || true
  echo "   $m: paused at $(cat "$work/$m.redo") (target $end_lsn), $(cat "$work/$m.restored") files through restore_command's %p; CPU of the last run: startup process ${cpu_s:-?} s (and ${runq:-?} s waiting for a core), restore_command ${cpu_c:-?} s"
done
if [ "$(cat "$work"/*[0-9].redo | sort -u | wc -l)" != 1 ]; then
  echo "error: the runs did not stop at the same LSN" >&2; exit 1
fi
args=()
for m in $MODES; do args+=("$m=${best[$m]}=$(echo ${times[$m]} | tr ' ' ,)"); done
python3 - "$WAL_MB" "${args[@]}" <<'PY'
import statistics, sys
mb = float(sys.argv[1])
t, rounds = {}, {}
for a in sys.argv[2:]:
    k, b, r = a.split("=")
    t[k], rounds[k] = float(b), [float(x) for x in r.split(",")]
names = {"local": "WAL in pg_wal", "false": "WAL in pg_wal with restore_command=false", "getwal": "get-wal --prefetch", "getwal0": "get-wal", "getwalssh": "get-wal --ssh --prefetch", "copywal": "cp of plain files"}
print("   best: " + ", ".join(f"{names[k]} {v:.2f}s ({mb/v:.0f} MiB/s)" for k, v in t.items()))
if "local" in t:
    print("   speed relative to WAL in pg_wal (1.00): " + ", ".join(f"{names[k]} {t['local']/v:.2f}" for k, v in t.items() if k != "local") + "  (best against best, for reference: the targets are the paired medians below)")
if "false" in t and "getwal" in t:
    print(f"   get-wal --prefetch relative to WAL in pg_wal with restore_command=false (the floor of any restore_command): {t['false']/t['getwal']:.2f}")
if "copywal" in t and "getwal" in t:
    print(f"   get-wal --prefetch relative to restore_command=cp of plain files: {t['copywal']/t['getwal']:.2f}  (best against best)")
# Paired per round: each mode against the baseline of the same round (run minutes apart,
# every other round reversed), then the median over rounds. A best-of ratio divides the
# luckiest run of one mode by the luckiest of another, and on a shared VM one lucky run
# (25% faster than the same mode in every other round) decides it.
def paired(k, base):
    rs = [b / v for v, b in zip(rounds[k], rounds[base])]
    return f"{statistics.median(rs):.2f} (rounds: " + ", ".join(f"{r:.2f}" for r in rs) + ")"
if "local" in t:
    print("   paired per round, median (the targets): " + ", ".join(f"{names[k]} {paired(k, 'local')}" for k in t if k != "local") + " relative to WAL in pg_wal (get-wal --prefetch >= 0.95)")
if "getwalssh" in t and "getwal" in t:
    rs = [g / s for s, g in zip(rounds["getwalssh"], rounds["getwal"])]
    print(f"   paired per round, median: remote restore (get-wal --ssh --prefetch) relative to the local restore (get-wal --prefetch) {statistics.median(rs):.2f} (rounds: " + ", ".join(f"{r:.2f}" for r in rs) + ")")
if "copywal" in t and "getwal" in t:
    rs = [c / g for g, c in zip(rounds["getwal"], rounds["copywal"])]
    print(f"   paired per round, median: get-wal --prefetch relative to cp of plain files {statistics.median(rs):.2f} (rounds: " + ", ".join(f"{r:.2f}" for r in rs) + ") (>= 1.00)")
PY

echo "== 2. walkeeper restore of the base backup (parallel extraction, one sync)"
rm -rf "$work/r-extract"
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
rm -rf "$work/r-extract"
