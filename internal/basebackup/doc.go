// Package basebackup takes physical base backups over the replication protocol and owns
// their on-disk format, backup.info and the operations on the set of a server's backups
// (resolve, list figures, delete). Restore and verify read backups only through Contents, PlanReads
// and OpenEntry.
//
// # Taking a backup
//
// Take sends its own PG15 BASE_BACKUP command (LABEL, PROGRESS, CHECKPOINT 'fast',
// WAIT false, WAL false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C'; no TABLESPACE_MAP,
// so pg_tblspc/<oid> arrive as symlinks) on a replication=yes connection and
// demultiplexes PG15's single COPY stream itself: 'n' starts a tar archive (tablespaces
// first, base.tar last), 'd' carries its bytes, 'p' progress, 'm' the manifest. Each tar
// stream is parsed on the fly; large files are cut into 4 MiB chunks and small files
// gathered into bundles that a pool of compression workers (parallel_jobs, default all
// cores) compresses while the stream is still being read, and a pool of writers stores
// each object durably.
// bandwidth_limit throttles the reading of the stream.
//
// One backup per server at a time: Take holds an flock on <home>/<server>/backup.lock
// for the whole backup (the kernel drops it if the process dies); the next Take marks
// backups a dead process left STARTED or WAITING_WAL as FAILED.
//
// States, each written durably to backup.info and then to the index: STARTED (before
// the first byte; updated with the begin LSN/WAL as soon as the server reports them),
// WAITING_WAL (all data, the manifest and the contents list are stored), then DONE once
// every segment from BeginWAL to EndWAL is in the archive (archive.Find), or
// FAILED with the error. After the stream, the end segment is closed on purpose so an
// idle server cannot stall the backup: pg_switch_wal() on a primary, on the primary
// through primary_conninfo for a standby. The wait is bounded by the wait timeout; the
// error names the cause: pg_stat_archiver's last failure (of the server and, for a
// standby, of the primary), a daemon that is not running, or a standby without
// primary_conninfo.
//
// # On-disk format (storage keys, all through storage.Store)
//
// The backup's directory and its fixed files are placed by package archive
// (archive.BackupPrefix, BackupInfoKey, BackupManifestKey, BackupContentsKey,
// BackupDataPrefix), which documents the whole archive's layout; the keys below data/
// are this package's own (dataKey, bundle keys), recorded in the contents list.
//
//	<server>/base/<id>/backup.info         record.Backup as JSON; the truth about the backup
//	<server>/base/<id>/backup_manifest     the server's manifest, byte for byte as sent
//	<server>/base/<id>/contents.json.zst   {"version":2,"backup_id":..,"entries":[Entry...]}, zstd
//	<server>/base/<id>/data/pgdata/<path>[.zst|.gz]   one object per file over 256 KiB
//	<server>/base/<id>/data/<oid>/<path>[.zst|.gz]    the same for tablespace <oid>
//	<server>/base/<id>/data/objects/NNNNNN[.zst|.gz]  either, with an encrypted repository (OpaqueNames)
//	<server>/base/<id>/data/bundles/NNNNNN[.zst|.gz]  files up to 256 KiB, up to ~32 MiB per bundle
//
// <id> is the UTC start time, 20061102T150405. Directories, symlinks and empty files
// exist only as entries in contents.json.zst (with mode and mtime). A large file's object
// is a sequence of independent compressed frames, one per 4 MiB of content (zstd frames
// or gzip members, which their standard streaming decoders read as one stream), so one
// relation segment is compressed on all cores and the object still decompresses with
// `zstd -d` or `gzip -d`. A bundle is its small files back to back, compressed as one
// solid frame whose window spans the bundle (the catalogs of every database are nearly
// identical: a window that sees them all stores them about three times smaller than one
// frame per file); each entry records its bundle (Key, Solid) and its Offset in the
// decompressed bundle. Readers plan by stored object (PlanReads, ReadUnit.Read): a
// bundle is decoded once for all its members, whatever the order of files, and units
// run on all cores (OpenEntry alone keeps the last few bundles for random access). Format version 1 (contents.json, uncompressed; one frame per
// small file at a stored Offset, Entry.Bundle) is still read.
//
// Why per-file objects rather than one tar per tablespace: restore extracts files in
// parallel with no shared stream to decode, verify checks (and a DBA fetches) one file
// without reading the rest, a damaged object loses one file (or one bundle's files)
// rather than the rest of an archive, and an object store can take the objects
// unchanged. Bundles keep the number of durable writes low: a fresh cluster has ~1000
// files, ~95% of them small catalog files, and a durable write costs a file fsync and a
// directory fsync.
//
// contents.json is written after every data object is durable and before WAITING_WAL,
// so a backup whose backup.info says WAITING_WAL or DONE has all of its content.
// Delete runs the other way round: backup.info is first rewritten FAILED ("being
// deleted"), then content objects go, backup.info last, and the index record after it.
package basebackup
