package restore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/walkeeper/walkeeper/internal/fsutil"
	"github.com/walkeeper/walkeeper/internal/pgutil"
)

// SandboxState is what `walkeeper sandbox` leaves in <home>/<server>/sandbox.json so
// that `sandbox status` and `sandbox stop` find the instance.
type SandboxState struct {
	Server    string    `json:"server"`
	BackupID  string    `json:"backup_id"`
	Target    string    `json:"target"`
	Timeline  uint32    `json:"timeline"`
	Root      string    `json:"root"`     // scratch directory, removed by stop
	DataDir   string    `json:"data_dir"` // PGDATA
	SocketDir string    `json:"socket_dir"`
	Port      int       `json:"port"`
	LogFile   string    `json:"log_file"`
	PGBin     string    `json:"pg_bin"`
	User      string    `json:"db_user,omitempty"`
	Action    string    `json:"target_action"`
	OSUser    string    `json:"os_user,omitempty"` // who PostgreSQL runs as (when started by root)
	StartedAt time.Time `json:"started_at"`
}

// SandboxStateFile is the state file of a server's sandbox.
func SandboxStateFile(serverDir string) string { return filepath.Join(serverDir, "sandbox.json") }

// LoadSandbox reads a server's sandbox state; os.ErrNotExist when none.
func LoadSandbox(serverDir string) (SandboxState, error) {
	var st SandboxState
	b, err := os.ReadFile(SandboxStateFile(serverDir))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", SandboxStateFile(serverDir), err)
	}
	return st, nil
}

// SaveSandbox writes the state durably.
func SaveSandbox(serverDir string, st SandboxState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(SandboxStateFile(serverDir), append(b, '\n'), 0o600)
}

// Conninfo is how to reach the sandbox over TCP on the loopback interface.
func (s SandboxState) Conninfo(db string) string {
	ci := fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s", s.Port, db)
	if s.User != "" {
		ci += " user=" + s.User
	}
	return ci + " sslmode=disable"
}

// socketConninfo reaches the sandbox over its private unix socket.
func (s SandboxState) socketConninfo() string {
	ci := fmt.Sprintf("host=%s port=%d dbname=postgres", s.SocketDir, s.Port)
	if s.User != "" {
		ci += " user=" + s.User
	}
	return ci
}

// SandboxSettings are the settings that make a restored cluster a private, read-only
// flashback copy: its own port and socket, loopback only, hot standby to read while
// in recovery, no SSL files of the original, and its own local-only pg_hba.conf
// (WriteSandboxHBA) whatever hba_file production's postgresql.conf names. Archiving
// is off as in every restore without --archive (ArchiveSettings). With promote,
// the first start listens on the private socket only (see startPostgres).
func SandboxSettings(port int, socketDir, dataDir, action string) []Setting {
	listen := "127.0.0.1"
	if action == ActionPromote {
		listen = ""
	}
	return []Setting{
		{"port", strconv.Itoa(port)},
		{"listen_addresses", listen},
		{"unix_socket_directories", socketDir},
		{"hba_file", filepath.Join(dataDir, "pg_hba.conf")},
		{"hot_standby", "on"},
		{"ssl", "off"},
		{"logging_collector", "off"},
		{"log_destination", "stderr"},
		{"cluster_name", "walkeeper-sandbox"},
		{"synchronous_standby_names", ""},
		{"primary_conninfo", ""},
		{"primary_slot_name", ""},
	}
}

// sandboxStandbySettings end a promote sandbox's first life: it was promoted at the
// target (which ended the transactions in flight and released their locks) and now
// comes back as a hot standby with nothing to replay and no target, so that writes
// are impossible at the server level (a session cannot SET its way out of
// recovery) and only a deliberate pg_promote() would end it. No restore_command: the
// copy must never replay WAL of another cluster that reuses its timeline number.
func sandboxStandbySettings() []Setting {
	return []Setting{
		{"listen_addresses", "127.0.0.1"},
		{"restore_command", ""},
		{"recovery_end_command", ""},
		{"recovery_target", ""},
		{"recovery_target_name", ""},
		{"recovery_target_time", ""},
		{"recovery_target_xid", ""},
		{"recovery_target_lsn", ""},
		{"recovery_target_timeline", "current"},
	}
}

// WriteSandboxHBA replaces the restored pg_hba.conf with LocalOnlyHBA's narrowing of
// it (hba_file points there, see SandboxSettings), durably and owned by o.
func WriteSandboxHBA(dataDir string, o *Owner) error {
	p := filepath.Join(dataDir, "pg_hba.conf")
	orig, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return writeOwned(p, LocalOnlyHBA(orig), o)
}

// writeOwned writes a file atomically and durably, owned by o (nil: by us).
func writeOwned(p string, data []byte, o *Owner) error {
	if err := fsutil.WriteFileAtomic(p, data, 0o600); err != nil {
		return err
	}
	if o != nil {
		if err := os.Lchown(p, o.UID, o.GID); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	return nil
}

// FindPGBin finds the directory of pg_ctl for a PostgreSQL major version: explicit
// wins, then Debian's /usr/lib/postgresql/<major>/bin, Red Hat's /usr/pgsql-<major>/bin,
// then pg_ctl on PATH. The postgres binary there must be of the backup's major
// (pgVersion is server_version_num; 0: unknown, not checked): a data directory starts
// only with its own major's binaries, and older ones must be refused before anything
// is restored rather than fail at start-up.
func FindPGBin(explicit string, pgVersion int) (string, error) {
	major := pgVersion / 10000
	if explicit != "" {
		if _, err := os.Stat(filepath.Join(explicit, "pg_ctl")); err != nil {
			return "", usage("--pg-bin %s: no pg_ctl there", explicit)
		}
		if err := checkBinMajor(explicit, major); err != nil {
			return "", usage("--pg-bin %s: %v", explicit, err)
		}
		return explicit, nil
	}
	if major > 0 {
		for _, d := range []string{fmt.Sprintf("/usr/lib/postgresql/%d/bin", major), fmt.Sprintf("/usr/pgsql-%d/bin", major)} {
			if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
				return d, checkBinMajor(d, major)
			}
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		d := filepath.Dir(p)
		if err := checkBinMajor(d, major); err != nil {
			return "", fmt.Errorf("pg_ctl on PATH (%s): %w: give --pg-bin", d, err)
		}
		return d, nil
	}
	return "", fmt.Errorf("pg_ctl for PostgreSQL %d not found (looked in /usr/lib/postgresql/%d/bin, /usr/pgsql-%d/bin and PATH): give --pg-bin", major, major, major)
}

// StartBinaries is the bin directory a restored cluster of pgVersion (server_version_num)
// is to be started with, found before anything is restored. The DBA's explicit choice
// must be of the backup's major (a usage error otherwise: a data directory starts only
// with its own major's binaries, and the mismatch would otherwise surface only at start).
// Without one, FindPGBin's search runs and a miss is no error, since the cluster may be
// started on binaries installed later: note says what was not found.
func StartBinaries(explicit string, pgVersion int) (dir, note string, err error) {
	if explicit != "" {
		dir, err = FindPGBin(explicit, pgVersion)
		return dir, "", err
	}
	if dir, err = FindPGBin("", pgVersion); err != nil {
		return "", err.Error(), nil
	}
	return dir, "", nil
}

// checkBinMajor fails when dir's postgres is not of major (0: not checked).
func checkBinMajor(dir string, major int) error {
	if major == 0 {
		return nil
	}
	out, err := exec.Command(filepath.Join(dir, "postgres"), "--version").Output()
	if err != nil {
		return fmt.Errorf("%s/postgres --version: %w", dir, err)
	}
	// "postgres (PostgreSQL) 15.18 (Debian ...)": the version is the third field.
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return fmt.Errorf("%s/postgres --version: unexpected answer %q", dir, strings.TrimSpace(string(out)))
	}
	got, err := pgutil.ParseMajor(f[2])
	if err != nil {
		return fmt.Errorf("%s/postgres --version: %w", dir, err)
	}
	if got != major {
		return fmt.Errorf("its binaries are PostgreSQL %d, but the backup is of PostgreSQL %d: a data directory starts only with binaries of its own major", got, major)
	}
	return nil
}

// FreePort asks the kernel for a free loopback TCP port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PostgresOwner is who PostgreSQL must run as when walkeeper runs as root: the
// `postgres` OS user. It returns nil when not root (PostgreSQL runs as the caller).
func PostgresOwner() (*Owner, string, error) {
	if os.Geteuid() != 0 {
		return nil, "", nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, "", fmt.Errorf("running as root and there is no OS user postgres to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &Owner{UID: uid, GID: gid}, u.HomeDir, nil
}

// CheckReachable fails when the owner cannot traverse to dir (root restoring under a
// 0700 home that PostgreSQL, as postgres, could not open).
func CheckReachable(dir string, o *Owner) error {
	if d, perm, ok := Reachable(dir, o); !ok {
		return usage("%s: the postgres OS user cannot reach %s (mode %v): choose a --dir it can reach", dir, d, perm)
	}
	return nil
}

// Reachable says whether o may traverse every directory above dir; when not, it
// names the first that stops it and its mode. A nil o (not root) reaches everything.
func Reachable(dir string, o *Owner) (string, os.FileMode, bool) {
	if o == nil {
		return "", 0, true
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			st := fi.Sys().(*syscall.Stat_t)
			perm := fi.Mode().Perm()
			ok := perm&0o001 != 0 || int(st.Uid) == o.UID && perm&0o100 != 0 || int(st.Gid) == o.GID && perm&0o010 != 0
			if !ok {
				return d, perm, false
			}
		}
		if d == filepath.Dir(d) {
			return "", 0, true
		}
	}
}

// runAs runs a command as owner (nil: as ourselves) and returns combined output.
func runAs(ctx context.Context, o *Owner, home string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if o != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(o.UID), Gid: uint32(o.GID)}}
		env := []string{}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "USER=") && !strings.HasPrefix(kv, "LOGNAME=") {
				env = append(env, kv)
			}
		}
		cmd.Env = append(env, "HOME="+home, "USER=postgres", "LOGNAME=postgres")
		cmd.Dir = "/"
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// startPostgres starts PostgreSQL on the restored directory (pg_ctl start -w) and
// waits until it is a read-only hot standby at the target. Paused (the default):
// restored with standby.signal, replay pauses at the target and stays in recovery.
// Promote: recovery ends at the target (on the private socket only), then the
// cluster is stopped and comes back as a standby with nothing to replay (see
// sandboxStandbySettings). On failure the server log's tail is part of the error.
func startPostgres(ctx context.Context, st SandboxState, o *Owner, home string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if st.Action == ActionPromote {
		if err := pgStart(ctx, st, o, home, timeout); err != nil {
			return err
		}
		if err := waitState(ctx, st, "not in recovery", deadline); err != nil {
			return err
		}
		if out, err := runAs(ctx, o, home, filepath.Join(st.PGBin, "pg_ctl"), "stop", "-D", st.DataDir, "-m", "fast", "-w", "-t", "60"); err != nil {
			return fmt.Errorf("pg_ctl stop after recovery: %v: %s", err, strings.TrimSpace(out))
		}
		auto := filepath.Join(st.DataDir, "postgresql.auto.conf")
		conf, err := os.ReadFile(auto)
		if err != nil {
			return err
		}
		conf = append(conf, RenderSettings("walkeeper sandbox: recovered to the target, now a read-only standby", sandboxStandbySettings())...)
		if err := writeOwned(auto, conf, o); err != nil {
			return err
		}
		if err := writeOwned(filepath.Join(st.DataDir, "standby.signal"), nil, o); err != nil {
			return err
		}
		if err := fsutil.SyncDir(st.DataDir); err != nil {
			return err
		}
		if err := pgStart(ctx, st, o, home, time.Until(deadline)); err != nil {
			return err
		}
		return waitState(ctx, st, "standby", deadline)
	}
	if err := pgStart(ctx, st, o, home, timeout); err != nil {
		return err
	}
	return waitState(ctx, st, "paused", deadline)
}

func pgStart(ctx context.Context, st SandboxState, o *Owner, home string, timeout time.Duration) error {
	args := []string{"start", "-w", "-t", strconv.Itoa(max(1, int(timeout.Seconds()))), "-D", st.DataDir, "-l", st.LogFile}
	if out, err := runAs(ctx, o, home, filepath.Join(st.PGBin, "pg_ctl"), args...); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s\n--- %s ---\n%s", err, strings.TrimSpace(out), st.LogFile, logTail(st.LogFile, 15))
	}
	return nil
}

// waitState waits for PauseState to say want ("paused", "not in recovery"), or for
// "standby": in recovery, whatever the pause state.
func waitState(ctx context.Context, st SandboxState, want string, deadline time.Time) error {
	var last error
	var stalledSince time.Time
	for {
		state, err := PauseState(ctx, st)
		if err == nil && (state == want || want == "standby" && state != "not in recovery") {
			return nil
		}
		// A standby that ran out of archived WAL before its target waits for more
		// instead of ending recovery: say so at once rather than at the timeout.
		if err == nil && want == "paused" && state == "not paused" {
			if lsn, stalled := waitingForWAL(ctx, st); !stalled {
				stalledSince = time.Time{}
			} else if stalledSince.IsZero() {
				stalledSince = time.Now()
			} else if time.Since(stalledSince) >= 2*time.Second {
				return fmt.Errorf("replay reached the end of the archived WAL at %s without reaching %s (the target is later than what is archived, or on another timeline)", lsn, st.Target)
			}
		}
		if err == nil && state == "not in recovery" {
			return fmt.Errorf("the sandbox finished recovery without pausing at %s (the target was not reached, or recovery ended first)\n--- %s ---\n%s", st.Target, st.LogFile, logTail(st.LogFile, 15))
		}
		if err != nil {
			last = err
		}
		if postmasterPID(filepath.Join(st.DataDir, "postmaster.pid")) == 0 {
			return fmt.Errorf("PostgreSQL stopped during recovery\n--- %s ---\n%s", st.LogFile, logTail(st.LogFile, 15))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replay did not reach %s (%s) in time (last: %v)\n--- %s ---\n%s", st.Target, want, last, st.LogFile, logTail(st.LogFile, 15))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitingForWAL reports whether the startup process waits between attempts to fetch
// WAL (restore_command found nothing more), and the last LSN replayed.
func waitingForWAL(ctx context.Context, st SandboxState) (string, bool) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, st.socketConninfo())
	if err != nil {
		return "", false
	}
	defer conn.Close(context.Background())
	var ev, lsn string
	err = conn.QueryRow(cctx, `SELECT coalesce((SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup'), ''),
		coalesce(pg_last_wal_replay_lsn()::text, '')`).Scan(&ev, &lsn)
	return lsn, err == nil && ev == "RecoveryRetrieveRetryInterval"
}

// PauseState asks the sandbox whether replay is paused ("not paused", "pause
// requested", "paused") or "not in recovery". PostgreSQL 13 has no
// pg_get_wal_replay_pause_state(): pg_is_wal_replay_paused() answers there.
func PauseState(ctx context.Context, st SandboxState) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, st.socketConninfo())
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var rec bool
	var ver int
	if err := conn.QueryRow(cctx, "SELECT pg_is_in_recovery(), current_setting('server_version_num')::int").Scan(&rec, &ver); err != nil {
		return "", err
	}
	if !rec {
		return "not in recovery", nil
	}
	q := "SELECT pg_get_wal_replay_pause_state()"
	if ver < 140000 {
		q = "SELECT CASE WHEN pg_is_wal_replay_paused() THEN 'paused' ELSE 'not paused' END"
	}
	var state string
	if err := conn.QueryRow(cctx, q).Scan(&state); err != nil {
		return "", err
	}
	return state, nil
}

// LockedRelations lists the relations that transactions in flight at the pause point
// hold AccessExclusiveLock on (replayed lock records; the startup process keeps them
// while paused). The classic case is the DROP TABLE being rescued from: its lock is
// logged before its commit, so a target just before the commit leaves the table
// locked and every query on it waits. Ending recovery (--target-action promote) rolls
// those transactions back and frees the table.
func LockedRelations(ctx context.Context, st SandboxState) ([]string, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, st.socketConninfo())
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(cctx, `SELECT coalesce(d.datname, '?') || ': ' ||
		CASE WHEN l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		     THEN l.relation::regclass::text ELSE 'relation ' || l.relation::text END
		FROM pg_locks l LEFT JOIN pg_database d ON d.oid = l.database
		WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
		  AND l.pid = (SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup')
		ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ReplayPosition reports where the paused sandbox stands.
func ReplayPosition(ctx context.Context, st SandboxState) (lsn string, lastXact string, err error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, st.socketConninfo())
	if err != nil {
		return "", "", err
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(cctx, "SELECT coalesce(pg_last_wal_replay_lsn()::text, ''), coalesce(pg_last_xact_replay_timestamp()::text, '')").Scan(&lsn, &lastXact)
	return lsn, lastXact, err
}

// StopSandbox stops the sandbox's PostgreSQL (fast) and removes its scratch directory.
func StopSandbox(ctx context.Context, st SandboxState, o *Owner, home string) error {
	if pid := postmasterPID(filepath.Join(st.DataDir, "postmaster.pid")); pid > 0 {
		if out, err := runAs(ctx, o, home, filepath.Join(st.PGBin, "pg_ctl"), "stop", "-D", st.DataDir, "-m", "fast", "-w", "-t", "60"); err != nil {
			if alive(pid) {
				return fmt.Errorf("pg_ctl stop: %v: %s", err, strings.TrimSpace(out))
			}
		}
	}
	if st.Root == "" || st.Root == "/" {
		return errors.New("sandbox state has no scratch directory")
	}
	if err := os.RemoveAll(st.Root); err != nil {
		return fmt.Errorf("removing %s: %w", st.Root, err)
	}
	return fsutil.SyncDir(filepath.Dir(st.Root))
}

// Running reports whether the sandbox's postmaster is alive.
func (s SandboxState) Running() bool {
	pid := postmasterPID(filepath.Join(s.DataDir, "postmaster.pid"))
	return pid > 0 && alive(pid)
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func logTail(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
