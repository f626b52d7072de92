package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// ErrRefused marks a put-wal body that is not published: a name that is not WAL, or a
// body whose length cannot be the file's (cut short by a lost connection, or too long).
var ErrRefused = errors.New("refused")

// PutOptions is what put-wal knows about the body besides its bytes.
type PutOptions struct {
	// Size is the sender's size of the file (archive-wal --ssh sends it, -1 when
	// unknown): a body of another length is refused. It is the only check that catches
	// a .partial or history file cut short, whose length has no fixed value.
	Size int64
}

// Put is put-wal's whole job, the backup host's end of an archive_command over ssh:
// read the body of WAL file name from r and make it durable in incoming/ exactly as
// Drop does for archive-wal (same temp name, fsync, no-replace publication, same rule
// for a copy already waiting). Unlike Drop it cannot stat a source: the body arrives
// through a pipe that a lost connection ends early with a clean EOF, so the length is
// judged before anything is published. A segment must be exactly the server's segment
// size (from the archive's identity, else the size its own first page header claims);
// no file may be longer than its kind allows (read bounded by segments.MaxFileSize, so
// an endless body costs no more memory than one segment), nor empty. What passes is
// published; its content (system identifier, page address...) is judged by ingest,
// which quarantines a bad file with its reason, as for archive-wal.
func Put(ctx context.Context, store storage.Store, server, incomingDir, name string, r io.Reader, o PutOptions) (string, error) {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("put-wal %s: %w: %s", name, ErrRefused, fmt.Sprintf(format, a...))
	}
	n, err := segments.Parse(name)
	if err != nil {
		return "", fail("%v", err)
	}
	id, err := archive.LoadIdentity(ctx, store, server)
	known := err == nil && segments.ValidSegSize(id.SegSize)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("put-wal %s: %w", name, err)
	}
	var segSize uint64
	if known {
		segSize = id.SegSize
	}
	limit := segments.MaxFileSize(n.Kind, segSize)
	if o.Size > limit {
		return "", fail("the sender's size %d is larger than a %s of this server can be (%d bytes)", o.Size, n.Kind, limit)
	}
	// One allocation of the largest valid size plus a byte to see EOF: the whole body is
	// held before anything is written, so a refused body never touches incoming/.
	capHint := limit + 1
	if o.Size >= 0 {
		capHint = o.Size + 1
	}
	data, err := fsutil.ReadLimited(r, make([]byte, 0, capHint), limit)
	if errors.Is(err, fsutil.ErrTooLarge) {
		return "", fail("body is larger than a %s of this server can be (%d bytes)", n.Kind, limit)
	}
	if err != nil {
		return "", fmt.Errorf("put-wal %s: read the body: %w", name, err)
	}
	size := int64(len(data))
	switch {
	case size == 0:
		return "", fail("empty body")
	case o.Size >= 0 && size != o.Size:
		return "", fail("body is %d bytes, the sender's file %d (connection lost?)", size, o.Size)
	}
	if n.Kind == segments.KindSegment {
		want := segSize
		if !known {
			h, herr := segments.ParseLongHeader(data)
			if herr != nil || !segments.ValidSegSize(uint64(h.SegSize)) {
				// No size to hold the body to: publish it, ingest quarantines it with
				// its reason (as archive-wal's copy of such a file).
				want = uint64(size)
			} else {
				want = uint64(h.SegSize)
			}
		}
		if uint64(size) != want {
			return "", fail("body is %d bytes, a segment of this server is %d (connection lost?)", size, want)
		}
	}
	dst, err := drop(incomingDir, n.Raw, bytes.NewReader(data), size)
	if err != nil {
		return "", fmt.Errorf("put-wal %s: %w", name, err)
	}
	return dst, nil
}
