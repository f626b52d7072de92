#!/usr/bin/env bash
# The real-PostgreSQL test matrix: a representative subset of the suite on each PostgreSQL
# major of WALKEEPER_PG_MAJORS (default 13,14,16,17,18; `make test` covers 15), with that
# major's server binaries (fetched and cached by scripts/pg-majors.sh) and PostgreSQL 15's
# client tools. One major after the other: the machine's cores go to each run's servers.
#
#   scripts/test-all-pg.sh                       every major, the subset below
#   WALKEEPER_PG_MAJORS=13,18 scripts/test-all-pg.sh
#
# The subset is what the README's "Supported PostgreSQL majors" names: archive through
# archive-wal, streaming with create_slot = auto and receive-wal's slot commands, a backup
# with a tablespace taken during writes, restores to an xid, a time, a name and a timeline,
# verify, the sandbox, and the harness itself. It prints the wall time per major.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

majors=${WALKEEPER_PG_MAJORS:-13,14,16,17,18}
go=${GO:-go}

# package|tests (a go test -run pattern)
subset=(
  "./internal/pgtest/|."
  "./internal/e2e/|^(TestArchiveRoundTrip|TestRestoreRefusesOtherMajor)$"
  "./internal/ingest/|^(TestReceiveWALCommand|TestReceiverWithArchiveCommand)$"
  "./internal/basebackup/|^(TestBackupTablespaceUnderLoad|TestStream)"
  "./internal/verify/|^TestVerifyFilesAgainstPostgres$"
  "./internal/check/|^TestCheckAndVerify$"
  "./internal/restore/|^TestPITR$"
)

summary=()
failed=0
for m in ${majors//,/ }; do
  line=$(bash scripts/pg-majors.sh "$m") || exit 1
  bin=${line#* }
  start=$(date +%s)
  echo "== PostgreSQL $m ($bin)"
  status=ok
  for s in "${subset[@]}"; do
    pkg=${s%%|*} run=${s#*|}
    if ! WALKEEPER_PGBIN=$bin WALKEEPER_PG_MAJORS=$m $go test -count=1 -timeout 20m -run "$run" "$pkg"; then
      status=FAILED
      failed=1
    fi
  done
  summary+=("PostgreSQL $m: $status in $(($(date +%s) - start))s")
done
printf '%s\n' "${summary[@]}"
exit $failed
