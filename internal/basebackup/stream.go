package basebackup

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// streamResult is what BASE_BACKUP reported and what was stored.
type streamResult struct {
	startLSN, endLSN segments.LSN
	startTLI, endTLI uint32
	entries          []*Entry
	objects          []StoredObject
	manifest         []byte
	tsLocations      map[uint32]string // from the tablespace result set and 'n' messages
	size, stored     int64
	files            int
}

// streamOptions configures one BASE_BACKUP transfer.
type streamOptions struct {
	store          storage.Store
	server, id     string
	label          string
	codec          string
	level          int
	jobs           int
	writers        int
	bandwidthLimit int64
	opaqueNames    bool
	progress       func(total int64) func(done int64)
	onStart        func(startLSN segments.LSN, tli uint32) error
}

// baseBackupSQL is the BASE_BACKUP command walkeeper sends to a server of the given
// major: the option list of 15 and later, the old keyword syntax before (13 and 14 reject
// the list; 15 and later the keywords). No TABLESPACE_MAP: the pg_tblspc links come
// through as symlinks, so a relocated restore verifies cleanly. No WAL: walkeeper takes
// the WAL from its own archive. No wait (WAIT false, NOWAIT): walkeeper waits for the
// archive itself, with a timeout and a cause.
func baseBackupSQL(label string, major int) string {
	q := strings.ReplaceAll(label, "'", "''")
	if major < 15 {
		return fmt.Sprintf("BASE_BACKUP LABEL '%s' PROGRESS FAST NOWAIT MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'", q)
	}
	return fmt.Sprintf("BASE_BACKUP (LABEL '%s', PROGRESS, CHECKPOINT 'fast', WAIT false, WAL false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'CRC32C')", q)
}

// throttle limits the stream to a byte rate.
type throttle struct {
	limit int64
	start time.Time
	n     int64
}

func (t *throttle) wait(ctx context.Context, n int) error {
	if t.limit <= 0 {
		return nil
	}
	if t.start.IsZero() {
		t.start = time.Now()
	}
	t.n += int64(n)
	want := t.start.Add(time.Duration(float64(t.n) / float64(t.limit) * float64(time.Second)))
	if d := time.Until(want); d > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return nil
}

// runBaseBackup sends BASE_BACKUP on a replication connection and stores the stream.
//
// Two stream layouts, chosen from the server's major:
//   - 15 and later: ONE COPY OUT for the whole backup, its CopyData typed by a first byte:
//     'n' new archive (name, NUL, tablespace path), 'd' data of the current archive,
//     'p' progress, 'm' the manifest starts (its bytes follow as 'd'). Any other type
//     fails the backup: data must never be skipped silently.
//   - 13 and 14: one COPY OUT of plain tar bytes per tablespace, in the order of the
//     tablespace result set (base last), then one more COPY OUT holding the manifest.
func runBaseBackup(ctx context.Context, conn *pgconn.PgConn, o streamOptions) (*streamResult, error) {
	res := &streamResult{tsLocations: map[uint32]string{}}
	major, err := pgutil.ServerMajor(conn)
	if err != nil {
		return nil, fmt.Errorf("BASE_BACKUP: the server's version: %w", err)
	}
	if err := pgutil.CheckMajor(major); err != nil {
		return nil, err
	}
	legacy := major < 15
	conn.Frontend().SendQuery(&pgproto3.Query{String: baseBackupSQL(o.label, major)})
	if err := conn.Frontend().Flush(); err != nil {
		return nil, fmt.Errorf("send BASE_BACKUP: %w", err)
	}
	p := newPipeline(ctx, o)
	finished := false
	var (
		resultSet  int // 0 start position, 1 tablespaces, 2 end position
		columns    []string
		tarW       *tarStream
		inManifest bool
		manifest   bytes.Buffer
		total      int64
		progress   func(int64)
		th         = throttle{limit: o.bandwidthLimit}
		tsOrder    []uint32 // legacy: the archives' tablespaces in stream order (0 = base)
		copies     int      // legacy: COPY OUT streams begun
		done       int64    // legacy: tar bytes received, for progress
	)
	defer func() {
		if finished {
			return
		}
		p.fail(errors.New("backup stream aborted"))
		if tarW != nil {
			tarW.abort()
		}
		_ = p.finish()
	}()
	endArchive := func() error {
		if tarW == nil {
			return nil
		}
		err := tarW.Close()
		if err != nil {
			tarW.abort()
		}
		tarW = nil
		return err
	}
	startArchive := func(oid uint32) { tarW = newTarStream(p, oid) }
	writeTar := func(b []byte) error {
		if tarW == nil {
			return fmt.Errorf("BASE_BACKUP: data before any archive")
		}
		if err := tarW.Write(b); err != nil {
			if perr := p.err(); perr != nil {
				return perr
			}
			return err
		}
		return nil
	}
	// One watch of the context for the whole stream: given a context that can be
	// cancelled, pgconn registers and removes a callback on it for every message, and a
	// schema of 37,000 files streams over 100,000 of them. Cancelling sets a deadline in
	// the past, which ends the read in progress.
	stopWatch := context.AfterFunc(p.ctx, func() { _ = conn.Conn().SetDeadline(time.Now()) })
	defer stopWatch()
	for {
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if perr := p.err(); perr != nil {
				return nil, perr
			}
			return nil, fmt.Errorf("BASE_BACKUP stream: connection to the server lost: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			columns = columns[:0]
			for _, f := range m.Fields {
				columns = append(columns, string(f.Name))
			}
		case *pgproto3.DataRow:
			if len(columns) == 2 && columns[0] == "recptr" {
				lsn, err := segments.ParseLSN(string(m.Values[0]))
				if err != nil {
					return nil, fmt.Errorf("BASE_BACKUP position %q: %w", m.Values[0], err)
				}
				tli, err := strconv.ParseUint(string(m.Values[1]), 10, 32)
				if err != nil {
					return nil, fmt.Errorf("BASE_BACKUP timeline %q: %w", m.Values[1], err)
				}
				if resultSet == 0 {
					res.startLSN, res.startTLI = lsn, uint32(tli)
					if o.onStart != nil {
						if err := o.onStart(lsn, uint32(tli)); err != nil {
							return nil, err
						}
					}
				} else {
					res.endLSN, res.endTLI = lsn, uint32(tli)
				}
			} else if len(columns) == 3 && columns[0] == "spcoid" {
				var oid uint32
				if m.Values[0] != nil {
					n, err := strconv.ParseUint(string(m.Values[0]), 10, 32)
					if err != nil || n == 0 {
						return nil, fmt.Errorf("BASE_BACKUP: tablespace oid %q: not a tablespace oid", m.Values[0])
					}
					oid = uint32(n)
					res.tsLocations[oid] = string(m.Values[1])
				}
				tsOrder = append(tsOrder, oid)
				if m.Values[2] != nil {
					if kb, err := strconv.ParseInt(string(m.Values[2]), 10, 64); err == nil {
						total += kb * 1024
					}
				}
			}
		case *pgproto3.CommandComplete:
			resultSet++
		case *pgproto3.CopyOutResponse:
			if o.progress != nil && progress == nil {
				progress = o.progress(total)
			}
			if legacy {
				switch {
				case copies < len(tsOrder):
					if err := endArchive(); err != nil {
						return nil, err
					}
					startArchive(tsOrder[copies])
				case copies == len(tsOrder):
					if err := endArchive(); err != nil {
						return nil, err
					}
					if err := p.archivesEnded(); err != nil {
						return nil, err
					}
					inManifest = true
				default:
					return nil, fmt.Errorf("BASE_BACKUP: COPY stream %d after %d tablespaces and the manifest", copies+1, len(tsOrder))
				}
				copies++
			}
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			if err := th.wait(p.ctx, len(m.Data)); err != nil {
				return nil, err
			}
			if legacy {
				if inManifest {
					manifest.Write(m.Data)
					continue
				}
				if err := writeTar(m.Data); err != nil {
					return nil, err
				}
				if done += int64(len(m.Data)); progress != nil {
					progress(done)
				}
				continue
			}
			switch m.Data[0] {
			case 'n':
				if err := endArchive(); err != nil {
					return nil, err
				}
				parts := bytes.SplitN(m.Data[1:], []byte{0}, 3)
				if len(parts) < 2 {
					return nil, fmt.Errorf("BASE_BACKUP: malformed new-archive message")
				}
				name, loc := string(parts[0]), string(parts[1])
				var oid uint32
				if name != "base.tar" {
					n, err := strconv.ParseUint(strings.TrimSuffix(name, ".tar"), 10, 32)
					if err != nil || !strings.HasSuffix(name, ".tar") {
						return nil, fmt.Errorf("BASE_BACKUP: unexpected archive %q (server-side compression is not used)", name)
					}
					oid = uint32(n)
					res.tsLocations[oid] = loc
				}
				startArchive(oid)
			case 'm':
				if err := endArchive(); err != nil {
					return nil, err
				}
				if err := p.archivesEnded(); err != nil {
					return nil, err
				}
				inManifest = true
			case 'd':
				if inManifest {
					manifest.Write(m.Data[1:])
					continue
				}
				if err := writeTar(m.Data[1:]); err != nil {
					return nil, err
				}
			case 'p':
				if len(m.Data) >= 9 && progress != nil {
					progress(int64(binary.BigEndian.Uint64(m.Data[1:9])))
				}
			default:
				return nil, fmt.Errorf("BASE_BACKUP: CopyData of unknown type %q (%d bytes) from a PostgreSQL %d server: refusing to drop it", m.Data[0], len(m.Data), major)
			}
		case *pgproto3.CopyDone:
			if err := endArchive(); err != nil {
				return nil, err
			}
		case *pgproto3.ErrorResponse:
			_ = endArchive()
			return nil, fmt.Errorf("BASE_BACKUP: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.NoticeResponse:
		case *pgproto3.ReadyForQuery:
			if err := endArchive(); err != nil {
				return nil, err
			}
			if err := p.archivesEnded(); err != nil {
				return nil, err
			}
			finished = true
			stopWatch()
			if err := p.finish(); err != nil {
				return nil, err
			}
			if res.endLSN == 0 {
				return nil, errors.New("BASE_BACKUP ended without an end position")
			}
			if manifest.Len() == 0 {
				return nil, errors.New("BASE_BACKUP sent no backup_manifest")
			}
			res.manifest = manifest.Bytes()
			<-p.sorted
			res.entries = p.entries
			res.objects = p.stores
			res.stored = p.stored
			for _, e := range p.entries {
				if e.Type == TypeFile {
					res.files++
					res.size += e.Size
				}
			}
			if progress != nil {
				progress(-1)
			}
			return res, nil
		}
	}
}
