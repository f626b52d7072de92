package basebackup

import "github.com/walkeeper/walkeeper/internal/config"

// ServerOptions are a backup's options from the server's configuration section
// (connections, compression, jobs, bandwidth, backup_wait_timeout, streaming); the
// caller adds the store, the index, the name and the callbacks.
func ServerOptions(srv *config.Server) Options {
	return Options{
		Server: srv.Name, ServerDir: srv.Dir(),
		Conninfo: srv.Conninfo, StreamingConninfo: srv.StreamingConninfo, PrimaryConninfo: srv.PrimaryConninfo,
		ApplicationName: srv.ApplicationName,
		Compression:     srv.BackupCompression, CompressionLevel: srv.BackupCompressionLevel,
		Jobs: srv.ParallelJobs, BandwidthLimit: srv.BandwidthLimit,
		WaitTimeout: srv.BackupWaitTimeout, IncomingDir: srv.IncomingDir(),
		StreamingArchiver: srv.StreamingArchiver, SlotName: srv.SlotName,
		OpaqueNames: srv.Repository.Encryption == "age",
	}
}
