// Package archive is the one package that knows the layout of a server's archive:
// the storage keys of its WAL files, history files, backup labels, identity and base
// backups, the server directories beside them on local disk (incoming/, errors/,
// streaming/), parsing a key back into what it holds, and the read side: finding,
// reading and listing archived files without the index (get-wal relies on that), the
// files waiting in incoming/ that are archived for PostgreSQL already (invariant 9),
// and the quarantine. ingest writes through its key functions; restore, verify,
// retention, check, basebackup, rebuild and the command line read through it. No other
// package spells a key: TestNoLayoutOutsideArchive fails the build's tests when one
// does, and TestLayering when a reader imports ingest.
//
// The layout is an on-disk format: existing archives must stay readable, so every
// name below is pinned by TestKeysAreTheOnDiskLayout.
//
// # Storage keys
//
// Keys are slash-separated and relative to the store's root (the local store maps
// them to files under <home>, mode 0600 in directories of mode 0700; an object store
// would take them unchanged). Every object is written with storage.Store.Put, which
// returns only once the object is durable (the local store writes a temporary file
// in the same directory, fsyncs it, renames it into place and fsyncs the directory),
// so an object is either absent or complete, never partial under its key.
//
//	<server>/wals/<tli+log>/<segment>[.zst|.gz]
//	    A WAL segment (24 hex digits), compressed with the server's codec: .zst zstd
//	    (several independent frames, so `zstd -d` reads it), .gz gzip, no suffix for
//	    none. <tli+log> is the name's first 16 characters (Barman's layout: at most one
//	    log's worth of segments per directory). Written by ingest's pipeline once the
//	    file passed validation (invariant 3); the index record is committed after the
//	    object is durable and the file leaves incoming/ only after that (invariant 1).
//	    A second arrival of the same name is compared with it, never written over it
//	    (invariant 2). Deleted only by retention (a durable delete: unlink, fsync of
//	    the directory), and only under this exact key (IsWALKeyOf).
//	<server>/wals/<tli+log>/<segment>.partial[.zst|.gz]
//	    The last, incomplete segment of a timeline: left by a promotion (archived by
//	    PostgreSQL as .partial) or handed over by the streaming receiver. Written as a
//	    segment is.
//	<server>/wals/<tli+log>/<segment>.<offset>.backup[.zst|.gz]
//	    A backup history file (label) PostgreSQL archives at the end of a backup,
//	    beside the segment it points into. Written as a segment is.
//	<server>/wals/history/<tli>.history[.zst|.gz]
//	    A timeline history file. Written as a segment is; never deleted (restore's
//	    timeline discovery reads them all: ListHistory).
//	<server>/identity.json
//	    The server's identity (record.Identity as indented JSON: system identifier,
//	    wal_segment_size, page magic, version, where it was learned). Written once by
//	    ingest (SaveIdentity) when it learns the identity, from the server or from the
//	    first valid segment, before that segment is stored; read by every validation
//	    and by get-wal to size its buffer. Never rewritten.
//	<server>/base/<id>/backup.info
//	    A backup's record (record.Backup as JSON), the truth about it: written by
//	    basebackup at every state change (STARTED, WAITING_WAL, DONE, FAILED) before
//	    the index mirrors it, and by keep/delete/retention. <id> is the UTC start time
//	    20061102T150405. ListBackupIDs lists the backups by this key.
//	<server>/base/<id>/backup_manifest
//	    PostgreSQL's backup manifest, byte for byte as sent; written before the
//	    contents list.
//	<server>/base/<id>/contents.json.zst
//	    The backup's entry list (format version 2, zstd); version 1 stored it
//	    uncompressed as contents.json, which is still read. Written after every data
//	    object is durable and before backup.info says WAITING_WAL, so a backup that
//	    says WAITING_WAL or DONE has all of its content.
//	<server>/base/<id>/data/...
//	    The backup's file contents. The keys below data/ are basebackup's own (one
//	    object per large file, bundles of small files; see basebackup's package
//	    documentation): each is recorded in the contents list, so no reader builds one.
//	    Deleted before backup.info, which goes last.
//
// Anything else under wals/ is not an archived file: ParseKey names it with the
// reason, index rebuild reports it as skipped, and get-wal never finds it. A WAL file
// moved by hand into another directory of wals/ parses (Key.Canonical false) but is
// not where Find looks.
//
// # Server directories on local disk
//
// Beside the store, <home>/<server>/ holds directories that are not archived data and
// never go to an object store:
//
//	incoming/<name>
//	    A WAL file made durable by archive-wal, put-wal or the receiver's hand-over
//	    (temporary name, fsync, rename, fsync of the directory; see ingest.Drop). For
//	    PostgreSQL it is archived already (invariant 9): FindPending serves the copy
//	    ingest will archive. The daemon removes it once it is archived and indexed.
//	incoming/<name>.wk-dup-<stamp>
//	    A later copy of a name whose earlier copy still waits (DupName: the stamp is
//	    the arrival time in nanoseconds, zero-padded so names sort in arrival order).
//	    A copy never replaces another; ingest judges them in order (Copies).
//	errors/<name>.<stamp>, errors/<name>.<stamp>.reason
//	    The quarantine: a file ingest refused (invalid, or a conflicting second copy),
//	    renamed here durably after its reason file was written atomically beside it
//	    (QuarantineName, ReasonFile). Nothing in it is ever deleted by walkeeper;
//	    status and check list it with Quarantined.
//	streaming/<segment>.partial, streaming/receiver.lock, streaming/receiver.state
//	    The streaming receiver's open segment (fdatasynced before the flush position
//	    is reported), its lock and its last state (written without fsync: a status
//	    report). A finished segment is handed over to incoming/.
//
// Temporary files of unfinished writes (fsutil.TempPrefix) may appear in any of
// these directories and under wals/; no listing returns them, and the daemon removes
// stale ones in incoming/ and wals/ at start (ingest.RemoveStaleTemps).
package archive
