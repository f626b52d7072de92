# Shared by the bench scripts (source it): where PostgreSQL's binaries are, running them
# as the postgres user when we are root, and a free loopback port.
PGBIN=${WALKEEPER_PGBIN:-/usr/lib/postgresql/15/bin}
as_pg() { if [ "$(id -u)" = 0 ]; then HOME=/var/lib/postgresql setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; else "$@"; fi; }
# prefault DIR MIB: write MIB MiB into a file in DIR, unsynced, and remove it. The first
# touch of a page of this VM's memory costs its kernel ~3 ms per MiB (dd of 800 MB into a
# new file: 2.3-2.6 s of system time; after removing a file that size: 0.2 s), and page
# cache never used before is such memory: whichever side of a comparison happened to run
# on it paid up to 3x. The benchmarks call this before each timed run that writes that
# much, so that both sides write into memory the guest has used before, as on a host
# that has run a while.
prefault() { dd if=/dev/zero of="$1/prefault" bs=1M count="$2" status=none; rm -f "$1/prefault"; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# private_sshd DIR PORT USER PUBKEY: a private sshd on 127.0.0.1:PORT (root only), its
# files in DIR, letting USER in with the key PUBKEY alone; sets sshd_pid.
private_sshd() {
  local dir=$1 port=$2 user=$3 pub=$4
  mkdir -p "$dir/auth" /run/sshd; chmod 755 "$dir" "$dir/auth"
  rm -f "$dir/host_key" "$dir/host_key.pub"
  ssh-keygen -q -t ed25519 -N "" -f "$dir/host_key"
  cp "$pub" "$dir/auth/$user"; chown "$user" "$dir/auth/$user"; chmod 600 "$dir/auth/$user"
  cat > "$dir/sshd_config" <<SSHD
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
AuthorizedKeysFile $dir/auth/%u
PidFile $dir/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM yes
AllowUsers $user
Subsystem sftp internal-sftp
SSHD
  /usr/sbin/sshd -D -f "$dir/sshd_config" -E "$dir/log" &
  sshd_pid=$!
}
