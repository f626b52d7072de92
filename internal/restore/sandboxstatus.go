package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"github.com/walkeeper/walkeeper/internal/textout"
)

// SandboxStatus is one sandbox as `sandbox status` shows it.
type SandboxStatus struct {
	SandboxState
	Running    bool   `json:"running"`
	Replay     string `json:"replay_state,omitempty"`
	ReplayLSN  string `json:"replay_lsn,omitempty"`
	LastXact   string `json:"last_transaction,omitempty"`
	Conninfo   string `json:"conninfo"`
	StatusNote string `json:"note,omitempty"`
}

// ReadSandboxStatus is the sandbox of the server whose directory is serverDir, asked
// where its replay stands when it runs; ok is false when the server has none.
func ReadSandboxStatus(ctx context.Context, serverDir string) (s SandboxStatus, ok bool, err error) {
	st, err := LoadSandbox(serverDir)
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	s = SandboxStatus{SandboxState: st, Running: st.Running(), Conninfo: st.Conninfo("postgres")}
	if s.Running {
		if s.Replay, err = PauseState(ctx, st); err != nil {
			s.StatusNote = err.Error()
		}
		s.ReplayLSN, s.LastXact, _ = ReplayPosition(ctx, st)
	}
	return s, true, nil
}

// ReadSandboxStatuses is ReadSandboxStatus of each server directory that has a
// sandbox (an empty list, not nil, for none).
func ReadSandboxStatuses(ctx context.Context, serverDirs []string) ([]SandboxStatus, error) {
	out := []SandboxStatus{}
	for _, d := range serverDirs {
		s, ok, err := ReadSandboxStatus(ctx, d)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// WriteSandboxTable renders sandboxes as a table ("no sandbox" for none).
func WriteSandboxTable(w io.Writer, sbs []SandboxStatus) {
	if len(sbs) == 0 {
		fmt.Fprintln(w, "no sandbox")
		return
	}
	var rows [][]string
	for _, s := range sbs {
		state := "stopped"
		if s.Running {
			state = "running, " + s.Replay
			if s.Action == ActionPromote && s.Replay == "not paused" {
				state = "running, recovered to the target (read-only standby)"
			}
		}
		rows = append(rows, []string{s.Server, s.BackupID, s.Target, state, s.ReplayLSN, fmt.Sprint(s.Port), s.Root})
	}
	textout.Table(w, []string{"SERVER", "BACKUP", "TARGET", "STATE", "REPLAY LSN", "PORT", "DIR"}, rows)
}

// StartPrefetcher launches `bin --config cfgFile prefetch-wal server spool` detached
// (own session, no stdio), so get-wal returns at once while the next segments are
// decompressed.
func StartPrefetcher(bin, cfgFile, server, spool string) error {
	return StartDetached(bin, "--config", cfgFile, "prefetch-wal", server, spool)
}

// StartDetached starts bin with args in a session of its own, its standard streams on
// /dev/null, and does not wait for it (get-wal's prefetcher: get-wal returns at once).
func StartDetached(bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	if err := cmd.Start(); err != nil {
		return err
	}
	return cmd.Process.Release()
}

// StopSandboxOf stops the sandbox of the server whose directory is serverDir and
// removes its scratch directory and state; it returns the stopped sandbox.
func StopSandboxOf(ctx context.Context, serverDir, server string) (SandboxState, error) {
	st, err := LoadSandbox(serverDir)
	if errors.Is(err, os.ErrNotExist) {
		return st, fmt.Errorf("%s has no sandbox", server)
	}
	if err != nil {
		return st, err
	}
	owner, home, err := PostgresOwner()
	if err != nil {
		return st, err
	}
	if err := StopSandbox(ctx, st, owner, home); err != nil {
		return st, fmt.Errorf("sandbox of %s: %w", server, err)
	}
	if err := os.Remove(SandboxStateFile(serverDir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return st, err
	}
	return st, nil
}

// WriteText renders a started sandbox for a DBA: where it stands, the relations
// locked at the target, how to connect and how to remove it.
func (sb SandboxResult) WriteText(w io.Writer) {
	st := sb.State
	how := "paused at"
	if st.Action == ActionPromote {
		how = "recovered to (recovery ended there, then restarted as a read-only standby)"
	}
	fmt.Fprintf(w, "sandbox of %s: backup %s restored into %s, PostgreSQL %s %s (timeline %d)\n", st.Server, sb.Restore.BackupID, st.DataDir, how, st.Target, st.Timeline)
	fmt.Fprintf(w, "replayed to %s, last transaction %s\n", sb.ReplayLSN, sb.LastTransaction)
	for _, l := range sb.Locked {
		fmt.Fprintf(w, "warning: %s is locked by a transaction in flight at the target (e.g. the DROP itself): queries on it wait; use --target-action promote to end recovery there and release it\n", l)
	}
	fmt.Fprintf(w, "connect (read-only): psql \"%s\"\n", st.Conninfo("postgres"))
	fmt.Fprintf(w, "stop and remove it:  walkeeper sandbox stop %s\n", st.Server)
}
