package supervisor

import (
	"context"
	"sync"
	"time"

	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/repo"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/tier"
	"github.com/walkeeper/walkeeper/internal/upload"
)

// startUploaders starts the uploader of each watched server that has a repository and
// publishes their state at /v1/info every second; it returns them by server, for the
// ingest pipelines to announce each archived file.
func startUploaders(ctx context.Context, o Options, store storage.Store, st *State, wg *sync.WaitGroup) map[string]*upload.Uploader {
	r, ok := store.(*tier.Routed)
	if !ok {
		return nil
	}
	ups := map[string]*upload.Uploader{}
	for _, s := range o.Servers {
		remote := r.RemoteOf(s.Name)
		if remote == nil {
			continue
		}
		u := upload.New(upload.Options{Server: s.Name, Local: r.Local, Remote: remote, Log: o.Log,
			LocalWALRetention: s.Repository.LocalWALRetention})
		ups[s.Name] = u
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = u.Run(ctx)
		}()
	}
	if len(ups) == 0 {
		return nil
	}
	publish := func() {
		for name, u := range ups {
			stats := u.Stats()
			if c, ok := repo.Requests(store, name); ok {
				stats.Requests = &c
			}
			st.Update(name, func(ss *daemon.ServerState) { ss.Upload = &stats })
		}
	}
	publish()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				publish()
			}
		}
	}()
	return ups
}
