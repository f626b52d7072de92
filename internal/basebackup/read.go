package basebackup

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"github.com/walkeeper/walkeeper/internal/bufpool"
	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// ReadUnit is one stored object and the file entries whose content it holds: a solid
// bundle with its members, or one file's own object (or an empty file, which has none).
// Restore and verify plan their work by unit, as restic's restorer plans by pack, so a
// bundle is decoded once however the files are ordered, and units run on all cores.
type ReadUnit struct {
	// Key is the stored object ("" for empty files).
	Key string
	// Entries are the unit's file entries, in the order Read passes them.
	Entries []Entry
	// Positions are the entries' indexes in the slice given to PlanReads, in Entries
	// order: callers map the unit back to their own records without a lookup by path.
	Positions []int
	// Size is the decompressed bytes of the entries: the work the unit costs.
	Size int64
}

// Solid reports whether the unit is a solid bundle (decoded whole into memory).
func (u ReadUnit) Solid() bool { return len(u.Entries) > 0 && u.Entries[0].Solid }

// PlanReads groups the file entries of a backup by the object that stores them (other
// entry types are left out), largest unit first so the workers finish together.
// Entries of a bundle come in offset order.
func PlanReads(entries []Entry) []ReadUnit {
	var units []ReadUnit
	// A bundle's members as indexes into entries, sorted and copied once at the end:
	// an Entry is ~200 bytes, and sorting thousands of them in place was most of
	// PlanReads' time (profiled on a schema of 3,000 tables).
	var members [][]int
	bundle := map[string]int{} // key -> index in units
	for i, e := range entries {
		if e.Type != TypeFile {
			continue
		}
		if e.Solid && e.Key != "" {
			u, ok := bundle[e.Key]
			if !ok {
				u = len(units)
				bundle[e.Key] = u
				units = append(units, ReadUnit{Key: e.Key})
				members = append(members, nil)
			}
			members[u] = append(members[u], i)
			units[u].Size += e.Size
			continue
		}
		// A file's own object, a version 1 bundle member (a frame of its own at a
		// stored offset: nothing to share) or an empty file.
		units = append(units, ReadUnit{Key: e.Key, Entries: []Entry{e}, Positions: []int{i}, Size: e.Size})
		members = append(members, nil)
	}
	for u, m := range members {
		if m == nil {
			continue
		}
		slices.SortStableFunc(m, func(a, b int) int { return cmp.Compare(entries[a].Offset, entries[b].Offset) })
		es := make([]Entry, len(m))
		for k, i := range m {
			es[k] = entries[i]
		}
		units[u].Entries, units[u].Positions = es, m
	}
	slices.SortStableFunc(units, func(a, b ReadUnit) int { return cmp.Compare(b.Size, a.Size) })
	return units
}

// bundleSlots bounds the solid bundles decoded at once (bundleSize each, plus the
// compressed copy while decoding) so a restore on many cores stays within a few hundred
// MiB of memory.
var bundleSlots = make(chan struct{}, 8)

// Read calls fn for each entry of the unit with its decompressed content, in Entries
// order: a solid bundle is read and decoded once for all its members. A content that
// cannot be read is still passed to fn, as a reader that fails with the cause (so a
// verifier reports each member, and a restorer fails on its first). An error that fn
// returns stops the unit and is returned. r is valid only during the call.
func (u ReadUnit) Read(ctx context.Context, store storage.Store, fn func(e Entry, r io.Reader) error) error {
	if !u.Solid() {
		for _, e := range u.Entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			rc, err := OpenEntry(ctx, store, e)
			if err != nil {
				if err := fn(e, errReader{err}); err != nil {
					return err
				}
				continue
			}
			err = fn(e, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	select {
	case bundleSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-bundleSlots }()
	codec := u.Entries[0].Codec
	if codec == "" {
		codec = compress.None
	}
	data, derr := readSolid(ctx, store, u.Key, codec, solidBufs.Get(int(u.Size)))
	// The members' readers are gone (valid only during fn): the buffer is kept for
	// the next bundle, which spares a fresh 32 MiB (page faults, zeroing) per bundle.
	defer solidBufs.Put(data)
	for _, e := range u.Entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		var r io.Reader
		switch {
		case derr != nil:
			r = errReader{fmt.Errorf("%s: %w", e.Path, derr)}
		case e.Offset < 0 || e.Offset+e.Size > int64(len(data)):
			r = errReader{fmt.Errorf("%s: %s holds %d bytes, the file is recorded at %d..%d: %w", e.Path, e.Key, len(data), e.Offset, e.Offset+e.Size, io.ErrUnexpectedEOF)}
		default:
			r = bytes.NewReader(data[e.Offset : e.Offset+e.Size])
		}
		if err := fn(e, r); err != nil {
			return err
		}
	}
	return nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// solidDecodes counts solid bundles decoded by this process.
var solidDecodes atomic.Int64

// SolidDecodes is the number of solid bundles this process has decoded so far: tests
// prove with it that a restore or a verify decodes each bundle once.
func SolidDecodes() int64 { return solidDecodes.Load() }

// solidBufs keeps decoded bundles' buffers between units, one per bundle slot. Not a
// sync.Pool, which every GC empties: the JSON of a large schema's lists makes several
// GCs a verify, and page faults were a quarter of its CPU, most of them in fresh
// bundle buffers (perf, a schema of 3,000 tables). packedBufs does the same for the
// compressed form.
var (
	solidBufs  = bufpool.New(cap(bundleSlots), bundleSize+smallFile)
	packedBufs = bufpool.New(cap(bundleSlots), 2*(bundleSize+smallFile))
)

// readSolid reads and decodes the solid bundle key, appending to dst.
func readSolid(ctx context.Context, store storage.Store, key, codec string, dst []byte) ([]byte, error) {
	r, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// Read into a buffer of the object's size (io.ReadAll would grow one by copies).
	size, _ := storage.SizeHint(r)
	size += bytes.MinRead
	buf := bytes.NewBuffer(packedBufs.Get(int(min(size, 2*(bundleSize+smallFile)))))
	_, err = buf.ReadFrom(r)
	packed := buf.Bytes()
	defer packedBufs.Put(packed)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	solidDecodes.Add(1)
	data, err := compress.DecodeAll(codec, packed, dst)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return data, nil
}
