#!/usr/bin/env bash
# Installs what `make test`, `make demo`, the bench scripts and .ci/run need on Debian 12:
# PostgreSQL 15 (server and client, no cluster created or started), the postgres OS user,
# openssh-server and -client (the remote-restore tests run a private sshd), zstd, make,
# python3 and git; and it builds the versitygw S3 server of the object-storage tests into a
# cache (Go module proxy, once). Go (>= the go.mod version) must already be installed: Debian's is too old.
#
# When everything is there it only stats a few files and returns, so `make test` runs it
# every time. When something is missing and we are not root, it fails in one line naming
# the command that installs it.
#
#   scripts/setup.sh            check, install what is missing (as root)
#   scripts/setup.sh --dry-run  print what is missing and the apt-get command it would run
#                               (and let apt-get resolve it with --simulate), install nothing
#
# SETUP_PREFIX=DIR looks for every file under DIR instead of / (to see what the script
# would do on a machine that lacks them, together with --dry-run).
set -euo pipefail

dry=""
case "${1:-}" in
  "") ;;
  -n | --dry-run) dry=1 ;;
  *) echo "usage: scripts/setup.sh [--dry-run]" >&2; exit 2 ;;
esac

prefix=${SETUP_PREFIX:-}
pgbin=${WALKEEPER_PGBIN:-/usr/lib/postgresql/15/bin}
self="scripts/setup.sh"

# need FILE PACKAGE: queue PACKAGE when FILE is not an executable file.
pkgs=()
files=()
what=() # "package (first missing file)", for the one-line message
need() {
  if [ ! -x "$prefix$1" ] || [ -d "$prefix$1" ]; then
    files+=("$1")
    case " ${pkgs[*]-} " in *" $2 "*) ;; *) pkgs+=("$2"); what+=("$2 ($1)") ;; esac
  fi
}

for b in postgres initdb pg_ctl pg_controldata pg_waldump pgbench; do need "$pgbin/$b" postgresql-15; done
for b in psql pg_basebackup pg_verifybackup; do need "$pgbin/$b" postgresql-client-15; done
need /usr/sbin/sshd openssh-server
need /usr/bin/ssh openssh-client
need /usr/bin/ssh-keygen openssh-client
need /usr/bin/zstd zstd
need /usr/bin/make make
need /usr/bin/python3 python3
need /usr/bin/git git
# walkeeper: the backup host's own user in the two-host tests (its home is not postgres's).
for u in postgres walkeeper; do
  if [ -n "$prefix" ]; then
    grep -q "^$u:" "$prefix/etc/passwd" 2>/dev/null || { files+=("user $u"); what+=("the $u OS user"); }
  else
    getent passwd "$u" >/dev/null || { files+=("user $u"); what+=("the $u OS user"); }
  fi
done

# Go is not installed from Debian (too old for go.mod): say so, do not guess.
gobin=""
if command -v go >/dev/null 2>&1; then gobin=$(command -v go)
elif [ -x /usr/local/go/bin/go ]; then gobin=/usr/local/go/bin/go
fi
if [ -n "$prefix" ]; then gobin=""; [ -x "$prefix/usr/local/go/bin/go" ] && gobin="$prefix/usr/local/go/bin/go"; fi

# versitygw, the S3 server of the object-storage tests (internal/s3test), is built once from
# the Go module proxy into a cache; keep in step with s3test.Module and s3test.CacheDir.
vgw_module=github.com/versity/versitygw/cmd/versitygw@v1.8.0
if [ "$(id -u)" = 0 ]; then
  vgw_cache=${WALKEEPER_TOOLS_CACHE:-/var/cache/walkeeper}/versitygw/v1.8.0
else
  vgw_cache=${WALKEEPER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/walkeeper}/versitygw/v1.8.0
fi
vgw_cmd="GOFLAGS=-mod=mod GOBIN=$vgw_cache go install $vgw_module"
# build_vgw: build versitygw when it is not cached (or say so with --dry-run). The build
# goes to a temporary GOBIN renamed into place, under the lock the test harness takes too.
build_vgw() {
  [ -x "$prefix$vgw_cache/versitygw" ] && return 0
  if [ -n "$dry" ]; then
    echo "setup: missing versitygw ($vgw_cache/versitygw): would run: $vgw_cmd"
    return 0
  fi
  [ -n "$gobin" ] || return 0 # the missing go is reported by the caller
  printf 'setup: building versitygw (the S3 server of the object-storage tests) into %s\n' "$vgw_cache"
  mkdir -p "$vgw_cache"
  local tmp
  tmp=$(mktemp -d "$vgw_cache/.build-XXXXXX")
  if ! (exec 9>"$vgw_cache/.lock" && flock 9 && { [ -x "$vgw_cache/versitygw" ] ||
    { GOFLAGS=-mod=mod GOBIN="$tmp" "$gobin" install "$vgw_module" && mv "$tmp/versitygw" "$vgw_cache/versitygw"; }; }); then
    rm -rf "$tmp"
    echo "setup: building versitygw failed: $vgw_cmd" >&2
    exit 1
  fi
  rm -rf "$tmp"
}

if [ ${#files[@]} -eq 0 ]; then
  if [ -z "$gobin" ]; then
    echo "setup: go not found on PATH or in /usr/local/go/bin: install Go (the version in go.mod) into /usr/local/go" >&2
    exit 1
  fi
  if [ -n "$dry" ] && [ -x "$prefix$vgw_cache/versitygw" ]; then echo "setup: nothing to install"; fi
  build_vgw
  exit 0
fi

missing=$(IFS=,; echo "missing ${what[*]}" | sed 's/,/, /g')
if [ -n "$dry" ]; then
  echo "setup: $missing"
  echo "setup: missing files: ${files[*]}"
  if [ ${#pkgs[@]} -gt 0 ]; then
    echo "setup: would run: apt-get install -y --no-install-recommends ${pkgs[*]} (with service starts and the main cluster disabled)"
    # apt-get resolves the names without installing anything (works as any user).
    apt-get install -s --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 \
      && echo "setup: apt-get --simulate resolves them" \
      || echo "setup: apt-get --simulate cannot resolve them (apt-get update first?)"
  fi
  case " ${files[*]} " in *" user postgres"*) echo "setup: would create the postgres OS user" ;; esac
  case " ${files[*]} " in *" user walkeeper"*) echo "setup: would create the walkeeper OS user" ;; esac
  [ -z "$gobin" ] && echo "setup: go not found: install Go (the version in go.mod) into /usr/local/go (not done by this script)"
  build_vgw
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: $missing: run 'sudo $self' (it installs what is missing)" >&2
  exit 1
fi
if [ -n "$prefix" ]; then
  echo "setup: SETUP_PREFIX is for --dry-run only" >&2
  exit 2
fi

log() { printf 'setup: %s\n' "$*"; }
export DEBIAN_FRONTEND=noninteractive
if [ ${#pkgs[@]} -gt 0 ]; then
  log "installing ${pkgs[*]}"
  # No service may start (policy-rc.d exit 101 = "action forbidden"): neither a
  # PostgreSQL cluster nor a system sshd; the tests start their own.
  policy=/usr/sbin/policy-rc.d
  made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    made_policy=1
  fi
  trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
  # postgresql-common would create (and start) a "main" cluster: the tests make their own.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
  fi
  apt-get update -q </dev/null
  apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${pkgs[@]}" </dev/null
fi
if ! getent passwd postgres >/dev/null; then
  log "creating the postgres OS user"
  useradd --system --user-group --home-dir /var/lib/postgresql --create-home --shell /bin/bash postgres
fi
if ! getent passwd walkeeper >/dev/null; then
  log "creating the walkeeper OS user (the backup host's user in the two-host tests)"
  useradd --system --user-group --home-dir /var/lib/walkeeper-user --create-home --shell /bin/bash walkeeper
fi
if [ -z "$gobin" ]; then
  echo "setup: go not found on PATH or in /usr/local/go/bin: install Go (the version in go.mod) into /usr/local/go" >&2
  exit 1
fi
build_vgw
log "done"
