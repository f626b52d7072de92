package supervisor

import (
	"context"
	"log/slog"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/daemon"
	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/retention"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// Retention applies retention for every watched server every retention_interval and
// soon after a new DONE backup appears (retention.RunSchedules).
var Retention = Service{Name: "retention", Run: func(ctx context.Context, env *Env) error {
	retention.RunSchedules(ctx, env.Config.File, env.Servers, env.Index, env.Store, env.Log)
	return nil
}}

// Receivers runs one streaming receiver per watched server with streaming_archiver =
// on (ingest.SuperviseReceivers), its state served in /v1/info.
var Receivers = Service{Name: "receiver", Run: func(ctx context.Context, env *Env) error {
	var cfgs []ingest.ReceiverConfig
	for _, s := range env.Servers {
		if s.StreamingArchiver {
			rc := ReceiverConfig(s, env.Log)
			rc.ArchivedEnd = ArchivedEndFromIndex(env.Index, s.Name)
			rc.SystemID = SystemIDFromStore(env.Store, s.Name)
			cfgs = append(cfgs, rc)
		}
	}
	ingest.SuperviseReceivers(ctx, cfgs, func(server string, st ingest.ReceiverState) {
		env.State.Update(server, func(ss *daemon.ServerState) { ss.Receiver = st })
	}, env.Log)
	return nil
}}

// ReceiverConfig maps a server's configuration to its receiver's.
func ReceiverConfig(s *config.Server, log *slog.Logger) ingest.ReceiverConfig {
	return ingest.ReceiverConfig{
		Server:          s.Name,
		Conninfo:        s.StreamingConninfo,
		SlotName:        s.SlotName,
		CreateSlot:      s.CreateSlot == "auto",
		ApplicationName: s.ApplicationName,
		StreamingDir:    s.StreamingDir(),
		IncomingDir:     s.IncomingDir(),
		Log:             log,
	}
}

// ArchivedEndFromIndex names the newest complete segment the index knows.
func ArchivedEndFromIndex(idx index.Index, server string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		st, err := idx.WALStats(ctx, server)
		if err != nil {
			return "", err
		}
		return st.LastSegment, nil
	}
}

// SystemIDFromStore gives the system identifier the server's archive was learned from.
func SystemIDFromStore(store storage.Store, server string) func(context.Context) (uint64, bool) {
	return func(ctx context.Context) (uint64, bool) {
		id, err := archive.LoadIdentity(ctx, store, server)
		if err != nil || id.SystemID == 0 {
			return 0, false
		}
		return id.SystemID, true
	}
}
