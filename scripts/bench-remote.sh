#!/usr/bin/env bash
# Per-segment archive cost from a database host to the backup host over ssh, against scp
# of the same file, measured in one run, interleaved. Two "hosts" on this machine: the
# postgres OS user (the database host, its ssh key) and the walkeeper OS user (the
# backup host, its home 0700), joined by a private sshd on a loopback port.
#
#   ssh          archive_command = 'ssh walkeeper@backup walkeeper put-wal pg1 %f < %p || exit 1'
#                (a new ssh connection per segment)
#   ssh+cm       the same through an ssh ControlMaster (the README's ~/.ssh/config)
#   archive-wal  walkeeper archive-wal --ssh "ssh ... (ControlMaster)" pg1 %p
#   scp          scp of the segment to the backup host (new connection; no fsync)
#   scp+cm       scp through the same ControlMaster
#
# The segment is a real 16 MiB WAL segment (initdb's first). Each put-wal writes a fresh
# name (the incoming/ copy is removed between rounds, outside the timing).
# Needs root (two OS users, sshd). Environment: ROUNDS (15), WALKEEPER_PGBIN.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-15}
[ "$(id -u)" = 0 ] || { echo "bench-remote: needs root (two OS users and a private sshd)" >&2; exit 1; }
getent passwd walkeeper >/dev/null || { echo "bench-remote: OS user walkeeper missing: run scripts/setup.sh" >&2; exit 1; }
as_wk() { HOME=/var/lib/walkeeper-user setpriv --reuid=walkeeper --regid=walkeeper --init-groups -- "$@"; }
work=$(mktemp -d /tmp/walkeeper-bench-remote-XXXXXX)
chmod 755 "$work"
sshdpid=""
cleanup() {
  as_pg ssh -S "$work/db/cm" -O exit x >/dev/null 2>&1 || true
  [ -n "$sshdpid" ] && kill "$sshdpid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

bin=$work/walkeeper
(cd "$root" && go build -o "$bin" ./cmd/walkeeper)
chmod 755 "$bin"

# backup host
mkdir -p "$work/backup"; chown walkeeper: "$work/backup"; chmod 700 "$work/backup"
cat > "$work/backup/walkeeper.conf" <<EOF
[walkeeper]
home = $work/backup/home

[pg1]
conninfo = host=127.0.0.1 port=1 dbname=postgres
EOF
chown walkeeper: "$work/backup/walkeeper.conf"
as_wk mkdir -m 700 "$work/backup/home"
as_wk mkdir -m 700 "$work/backup/scp"

# database host: a real segment and an ssh key
mkdir -p "$work/db"; chown postgres: "$work/db"; chmod 700 "$work/db"
as_pg "$PGBIN/initdb" -D "$work/db/data" -U postgres >/dev/null
seg=$work/db/000000010000000000000001
cp "$work/db/data/pg_wal/000000010000000000000001" "$seg"; chown postgres: "$seg"
as_pg ssh-keygen -q -t ed25519 -N "" -f "$work/db/key"
as_pg mkdir "$work/db/wal"

# sshd
port=$(freeport)
private_sshd "$work/sshd" "$port" walkeeper "$work/db/key.pub"
sshdpid=$sshd_pid
opts="-i $work/db/key -p $port -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
scpopts=${opts/-p $port/-P $port} # scp's port flag is -P
cm="-o ControlMaster=auto -o ControlPath=$work/db/cm -o ControlPersist=10m"
for i in $(seq 1 50); do as_pg ssh $opts walkeeper@127.0.0.1 true 2>/dev/null && break; sleep 0.1; done
as_pg ssh $opts $cm walkeeper@127.0.0.1 true # starts the master
rwk="$bin --config $work/backup/walkeeper.conf"

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
declare -A times
run() { # label command...
  local label=$1; shift
  local t0; t0=$(date +%s%N)
  as_pg sh -c "$*"
  times[$label]+="$(ms "$t0") "
}
names=(ssh ssh+cm archive-wal scp scp+cm)
echo "bench-remote: $ROUNDS rounds, one 16 MiB segment each way, interleaved"
for r in $(seq 1 "$ROUNDS"); do
  name=$(printf '0000000100000000%08X' $((r + 16)))
  run ssh "ssh $opts walkeeper@127.0.0.1 $rwk put-wal pg1 $name < $seg || exit 1"
  rm -f "$work/backup/home/pg1/incoming/$name"
  run ssh+cm "ssh $opts $cm walkeeper@127.0.0.1 $rwk put-wal pg1 $name < $seg || exit 1"
  rm -f "$work/backup/home/pg1/incoming/$name"
  cp "$seg" "$work/db/wal/$name"; chown postgres: "$work/db/wal/$name" # archive-wal sends the file's own name
  run archive-wal "$bin archive-wal --ssh \"ssh $opts $cm walkeeper@127.0.0.1\" --remote-command \"$rwk\" pg1 $work/db/wal/$name"
  rm -f "$work/backup/home/pg1/incoming/$name" "$work/db/wal/$name"
  run scp "scp -q $scpopts $seg walkeeper@127.0.0.1:$work/backup/scp/$name"
  run scp+cm "scp -q $scpopts $cm $seg walkeeper@127.0.0.1:$work/backup/scp/$name"
  rm -f "$work/backup/scp/$name"
done
stats() { /usr/bin/python3 -c 'import sys,statistics as s; v=sorted(map(int,sys.argv[1:])); print(f"{s.median(v):.0f} {v[len(v)//10]:.0f} {v[-1-len(v)//10]:.0f}")' $1; }
read -r base _ _ <<<"$(stats "${times[scp]}")"
read -r basecm _ _ <<<"$(stats "${times[scp+cm]}")"
printf '%-12s %9s %9s %9s %14s\n' method "median ms" "p10 ms" "p90 ms" "vs scp (same conn.)"
for n in "${names[@]}"; do
  read -r med p10 p90 <<<"$(stats "${times[$n]}")"
  b=$base; case $n in *cm|archive-wal) b=$basecm ;; esac
  printf '%-12s %9s %9s %9s %13.2fx\n' "$n" "$med" "$p10" "$p90" "$(/usr/bin/python3 -c "print($med/$b)")"
done
