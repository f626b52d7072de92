package restore

import "strconv"

// GetWALSSHCommand is the restore_command of a cluster restored on a host that has the
// walkeeper binary (bin) but not the archive: get-wal fetches over sshCmd from
// remoteCmd (the backup host's walkeeper invocation, "" for walkeeper on its PATH).
// With prefetch, the same shell fast path as GetWALCommand answers segments the
// prefetcher already placed in pg_wal without starting anything.
func GetWALSSHCommand(bin, sshCmd, remoteCmd, server string, prefetch int) string {
	cmd := ShellQuote(bin) + " get-wal --ssh " + ShellQuote(sshCmd)
	if remoteCmd != "" {
		cmd += " --remote-command " + ShellQuote(remoteCmd)
	}
	if prefetch <= 0 {
		return cmd + " " + ShellQuote(server) + " %f %p"
	}
	return prefetchFastPath() + cmd + " --prefetch " + strconv.Itoa(prefetch) + " " + ShellQuote(server) + " %f %p"
}
