package restore

import (
	"context"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/segments"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// readArchivedInto reads and decompresses an archived object into dst[:0], which should
// have room for the whole result (a segment: its segment size). Archived segments are
// several zstd frames (compressed in parallel); decoded into a buffer without room, the
// decoder grows it once per frame, and copying and page-faulting fresh memory took
// about two thirds of a get-wal call's CPU time (~100 ms of ~150 ms per 16 MiB segment
// on a loaded 2-core host). The prefetcher reuses one buffer per worker.
func readArchivedInto(ctx context.Context, store storage.Store, key, codec string, dst []byte) ([]byte, error) {
	return archive.ReadInto(ctx, store, key, codec, dst)
}

// segmentBuffer returns a buffer for one decompressed segment of server, sized from the
// archive's identity (a small file: get-wal still never needs the index), or nil when
// the identity cannot be read (the decoder then grows its own).
func segmentBuffer(ctx context.Context, store storage.Store, server string, n segments.Name) []byte {
	if n.Kind != segments.KindSegment && n.Kind != segments.KindPartial {
		return nil
	}
	id, err := archive.LoadIdentity(ctx, store, server)
	if err != nil || !segments.ValidSegSize(id.SegSize) {
		return nil
	}
	return make([]byte, 0, id.SegSize)
}
