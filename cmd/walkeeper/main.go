// Command walkeeper is a disaster-recovery tool for PostgreSQL: continuous WAL archiving,
// physical base backups and point-in-time recovery for many servers from one backup host.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strings"

	"github.com/alecthomas/kong"
)

// version is set at build time (-ldflags "-X main.version=..."); otherwise the module's.
var version = ""

// CLI is the command tree of DESIGN.md's command-line contract.
type CLI struct {
	Globals

	Watch       WatchCmd          `cmd:"" help:"Run the daemon: ingest WAL of all (or the named) servers and serve the local API."`
	ArchiveWAL  ArchiveWALCmd     `cmd:"" name:"archive-wal" help:"archive_command helper: durably drop a WAL file (%p) into the server's incoming directory."`
	PutWAL      PutWALCmd         `cmd:"" name:"put-wal" help:"The backup host's end of an ssh archive_command: the WAL file NAME (%f) on standard input, durable in incoming/ before exit 0."`
	GetWAL      GetWALCmd         `cmd:"" name:"get-wal" help:"restore_command helper: write an archived WAL file (%f) to a path (%p, or - for standard output); exit 1 when it is not archived."`
	SwitchWAL   SwitchWALCmd      `cmd:"" name:"switch-wal" help:"Force a WAL switch on the server; with --wait, until the closed segment is archived."`
	ReceiveWAL  ReceiveWALCmd     `cmd:"" name:"receive-wal" help:"Stream a server's WAL in the foreground (or --create-slot, --drop-slot, --reset)."`
	Backup      BackupCmd         `cmd:"" help:"Take a base backup of a server."`
	ListServers ListServersCmd    `cmd:"" name:"list-servers" help:"List configured servers with their archive state."`
	ListBackups ListBackupsCmd    `cmd:"" name:"list-backups" help:"List a server's backups with the WAL linked to each."`
	ShowBackup  ShowBackupCmd     `cmd:"" name:"show-backup" help:"Show everything known about one backup (ID may be latest or oldest)."`
	Status      StatusCmd         `cmd:"" help:"Show a server's archive state."`
	Check       CheckCmd          `cmd:"" help:"Run pass/fail checks of a server (or all): connections, archiving, WAL chain, backups, daemon; exit 1 if any fails."`
	Verify      VerifyCmd         `cmd:"" help:"Verify stored backups against their backup_manifest and the WAL chain for gaps; exit 1 on any problem."`
	Delete      DeleteCmd         `cmd:"" help:"Delete a backup (refused for a backup pinned with keep)."`
	Keep        KeepCmd           `cmd:"" help:"Pin a backup so retention never deletes it (or --release the pin)."`
	Retention   RetentionCmd      `cmd:"" help:"Apply (or with --dry-run show) the retention policies: obsolete backups and the WAL no kept backup needs."`
	Restore     RestoreCmd        `cmd:"" aliases:"recover" help:"Restore a backup into a data directory (locally or over ssh), optionally to a point in time."`
	Sandbox     SandboxCmd        `cmd:"" help:"Flashback: start a read-only PostgreSQL paused at a point in time from a backup (sandbox SERVER [ID] --target-...; sandbox stop|status)."`
	Index       IndexCmd          `cmd:"" help:"Index maintenance."`
	RepoInit    RepositoryInitCmd `cmd:"" name:"repository-init" help:"Prepare a server's repository (object storage or a directory): check it is reachable and, with encryption, create its key once."`
	PrefetchWAL PrefetchWALCmd    `cmd:"" name:"prefetch-wal" hidden:"" help:"get-wal's background prefetcher."`
	SendWAL     SendWALCmd        `cmd:"" name:"send-wal" hidden:"" help:"The backup host's end of get-wal --ssh's prefetcher: archived segments on request."`
}

// exitError carries an exit status with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks bad usage (exit 2).
func usageErr(format string, a ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, a...)}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func main() {
	// WALKEEPER_CPUPROFILE=FILE writes a pprof CPU profile of the command (benchmarks).
	if p := os.Getenv("WALKEEPER_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			code := run(os.Args[1:])
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(os.Args[1:]))
}

// getWALCLI is the command tree when the command is get-wal: restore_command runs
// get-wal once per WAL segment on the replay's critical path, and building kong's model
// of the whole CLI was the largest part of a call's CPU time (a fifth of it, more than
// the work itself). Same Globals and command struct, so parsing and help are the same.
type getWALCLI struct {
	Globals
	GetWAL GetWALCmd `cmd:"" name:"get-wal" help:"restore_command helper: write an archived WAL file (%f) to a path (%p, or - for standard output); exit 1 when it is not archived."`
}

// commandWord returns the first argument that is not a global flag or its value.
func commandWord(args []string) string {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--config":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			return a
		}
	}
	return ""
}

func run(args []string) int {
	var cli CLI
	var root any = &cli
	globals := &cli.Globals
	if commandWord(args) == "get-wal" {
		gw := &getWALCLI{}
		root, globals = gw, &gw.Globals
	}
	exit := -1
	parser, err := kong.New(root,
		kong.Name("walkeeper"),
		kong.Description("PostgreSQL WAL archiving, base backups and point-in-time recovery."),
		kong.UsageOnError(),
		kong.Vars{"version": buildVersion()},
		kong.Exit(func(code int) { exit = code }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "walkeeper: %s\n", oneLine(err.Error()))
		return 2
	}
	kctx, err := parser.Parse(args)
	if exit >= 0 {
		// --help and --version end here.
		return exit
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "walkeeper: %s\n", oneLine(err.Error()))
		return 2
	}
	app := newApp(globals)
	defer app.close()
	if err := kctx.Run(app); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintf(os.Stderr, "walkeeper: %s\n", oneLine(ee.err.Error()))
			}
			return ee.code
		}
		fmt.Fprintf(os.Stderr, "walkeeper: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

// oneLine makes an error message one line, as the command-line contract promises:
// causes from libraries (the INI parser, pg_ctl output, badger) may span several.
// Lines are joined with "; ", blank ones dropped.
func oneLine(msg string) string {
	var parts []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}
