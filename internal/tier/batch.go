package tier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/walkeeper/walkeeper/internal/storage"
)

// DeleteMany implements storage.BatchDeleter: every key from the local tier (eight at
// a time: each delete is durable on its own), then from the repository in batches
// (S3's DeleteObjects: 1,000 keys a request) when it can, so retention on a big
// archive costs a request per thousand files, not two per file. A key in neither tier
// is not an error.
func (s *Store) DeleteMany(ctx context.Context, keys []string) error {
	if err := deleteEach(ctx, s.Local, keys); err != nil {
		return err
	}
	if err := deleteMany(ctx, s.Remote, keys); err != nil {
		return fmt.Errorf("repository: %w", err)
	}
	return nil
}

// DeleteMany implements storage.BatchDeleter, by server.
func (r *Routed) DeleteMany(ctx context.Context, keys []string) error {
	byServer := map[string][]string{}
	var order []string
	for _, k := range keys {
		server, _, _ := strings.Cut(k, "/")
		if _, ok := byServer[server]; !ok {
			order = append(order, server)
		}
		byServer[server] = append(byServer[server], k)
	}
	for _, server := range order {
		if err := deleteMany(ctx, r.forKey(server+"/"), byServer[server]); err != nil {
			return err
		}
	}
	return nil
}

// DeleteMany implements storage.BatchDeleter once the repository is open.
func (z lazyStore) DeleteMany(ctx context.Context, keys []string) error {
	s, err := z.store(ctx)
	if err != nil {
		return err
	}
	return deleteMany(ctx, s, keys)
}

func deleteMany(ctx context.Context, s storage.Store, keys []string) error {
	if bd, ok := s.(storage.BatchDeleter); ok {
		return bd.DeleteMany(ctx, keys)
	}
	return deleteEach(ctx, s, keys)
}

// deleteEach deletes keys one by one, eight at a time; missing keys are fine.
func deleteEach(ctx context.Context, s storage.Store, keys []string) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	ch := make(chan string)
	for range min(8, len(keys)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range ch {
				if err := s.Delete(ctx, k); err != nil && !errors.Is(err, storage.ErrNotFound) {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		if ctx.Err() != nil {
			break
		}
		ch <- k
	}
	close(ch)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
