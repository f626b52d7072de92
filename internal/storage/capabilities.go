package storage

import (
	"context"
	"io"
)

// Capabilities some stores have beyond Store. Callers find them with a type assertion and
// fall back to the plain Store methods when a store lacks one.

// RangeGetter reads part of an object: n bytes from offset off (n < 0: to the end). Reading
// past the end returns what there is; a missing key wraps ErrNotFound.
type RangeGetter interface {
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
}

// BatchDeleter deletes many keys with few requests. A key that does not exist is not an
// error (the outcome, its absence, is the one asked for); the error of any other key that
// could not be deleted is reported, naming the key.
type BatchDeleter interface {
	DeleteMany(ctx context.Context, keys []string) error
}

// RequestCounts are the requests a store has sent, by kind, retries included.
type RequestCounts struct {
	Put, Get, List, Delete, Head, Other int64
}

// Total is the sum over all kinds.
func (c RequestCounts) Total() int64 {
	return c.Put + c.Get + c.List + c.Delete + c.Head + c.Other
}

// Sub returns c minus d, for the requests of one operation.
func (c RequestCounts) Sub(d RequestCounts) RequestCounts {
	return RequestCounts{c.Put - d.Put, c.Get - d.Get, c.List - d.List, c.Delete - d.Delete, c.Head - d.Head, c.Other - d.Other}
}

// RequestCounter reports the requests a remote store has sent since it was opened.
type RequestCounter interface {
	Requests() RequestCounts
}

// Tiered is a store over a local tier and a slower one behind it (a repository on
// object storage): a reader that probes several keys for one object (a WAL file in any
// codec) asks the local tier about all of them first, so that an object on the local
// disk is found without a request to the repository, also while it is unreachable.
type Tiered interface {
	LocalTier() Store
}
