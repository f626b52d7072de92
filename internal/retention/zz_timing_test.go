package retention

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/walkeeper/walkeeper/internal/catalog"
	"github.com/walkeeper/walkeeper/internal/index"
)

type timedIndex struct {
	index.Index
	del, scan atomic.Int64
}

func (t *timedIndex) DeleteWAL(ctx context.Context, s string, n []string) error {
	t0 := time.Now()
	defer func() { t.del.Add(int64(time.Since(t0))) }()
	return t.Index.DeleteWAL(ctx, s, n)
}
func (t *timedIndex) ScanWAL(ctx context.Context, s string, r index.WALRange, fn func(catalog.WALFile) error) error {
	t0 := time.Now()
	defer func() { t.scan.Add(int64(time.Since(t0))) }()
	return t.Index.ScanWAL(ctx, s, r, fn)
}
