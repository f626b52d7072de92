package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/walkeeper/walkeeper/internal/check"
	"github.com/walkeeper/walkeeper/internal/config"
	"github.com/walkeeper/walkeeper/internal/ingest"
	"github.com/walkeeper/walkeeper/internal/verify"
)

// errFailed makes a command exit 1 without another message: the output said why.
var errFailed = &exitError{code: 1, err: errors.New("")}

// CheckCmd runs the pass/fail checks of one server or all.
type CheckCmd struct {
	Server string `arg:"" help:"Server name, or 'all'."`
}

// Run implements the command.
func (c *CheckCmd) Run(a *App) error {
	cfg, err := a.Config()
	if err != nil {
		return err
	}
	var servers []*config.Server
	if c.Server == "all" {
		servers = cfg.Servers
		if len(servers) == 0 {
			return fmt.Errorf("%s configures no server", cfg.File)
		}
	} else {
		srv, err := cfg.Server(c.Server)
		if err != nil {
			return usageErr("%v", err)
		}
		servers = []*config.Server{srv}
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	idx, idxErr := a.Index()
	d := a.Daemon()
	ctx := context.Background()
	bin, _ := os.Executable()
	// Servers are checked at once (a few at a time): an unreachable one costs a connect
	// timeout, which should not add up over `check all`.
	per := make([][]check.Result, len(servers))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	var appMu sync.Mutex
	for i, srv := range servers {
		name := srv.Name
		deps := check.Deps{Server: srv, ConfigFile: cfg.File, Binary: bin, ChainRecheck: check.ChainRecheckDelay,
			Store: store, Index: idx, IndexErr: idxErr, Daemon: d,
			Receiver: func() (ingest.ReceiverState, bool) {
				appMu.Lock() // App is not safe for concurrent use
				defer appMu.Unlock()
				return receiverState(a, name)
			}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			per[i] = check.Run(ctx, deps)
		}()
	}
	wg.Wait()
	results := []check.Result{}
	for _, rs := range per {
		results = append(results, rs...)
	}
	if a.g.JSON {
		if err := a.printJSON(results); err != nil {
			return err
		}
	} else {
		last := ""
		for _, r := range results {
			if r.Server != last {
				fmt.Fprintf(a.out, "Server %s:\n", r.Server)
				last = r.Server
			}
			if r.OK {
				fmt.Fprintf(a.out, "  %s: OK (%s)\n", r.Check, r.Detail)
				continue
			}
			line := fmt.Sprintf("  %s: FAILED (%s)", r.Check, r.Detail)
			if r.Hint != "" {
				line += " hint: " + r.Hint
			}
			fmt.Fprintln(a.out, line)
		}
	}
	if check.Failed(results) {
		return errFailed
	}
	return nil
}

// receiverState gives receiverStatus's answer its type back.
func receiverState(a *App, server string) (ingest.ReceiverState, bool) {
	v, ok := receiverStatus(a, server)
	if !ok {
		return ingest.ReceiverState{}, false
	}
	if st, ok := v.(ingest.ReceiverState); ok {
		return st, true
	}
	var st ingest.ReceiverState
	b, err := json.Marshal(v)
	if err != nil || json.Unmarshal(b, &st) != nil {
		return ingest.ReceiverState{}, false
	}
	return st, true
}

// VerifyCmd checks stored backups against their manifests and the WAL chain for gaps.
type VerifyCmd struct {
	Server       string `arg:"" help:"Server name."`
	ID           string `arg:"" optional:"" help:"Backup id, name, 'latest' or 'oldest' (default: every DONE backup)."`
	WALChecksums bool   `name:"wal-checksums" help:"Also read every archived WAL file and compare its SHA-256 with the index record (reads the whole archive)."`
	NoFiles      bool   `name:"no-files" help:"Skip reading the backups' files; check only the WAL chain."`
	Jobs         int    `short:"j" help:"Parallel readers (default: the server's parallel_jobs)."`
}

// Run implements the command.
func (c *VerifyCmd) Run(a *App) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	srv, err := a.Server(c.Server)
	if err != nil {
		return usageErr("%v", err)
	}
	if c.Jobs < 0 {
		return usageErr("--jobs %d: must be positive", c.Jobs)
	}
	store, err := a.Store()
	if err != nil {
		return err
	}
	idx, err := a.Index()
	if err != nil {
		return err
	}
	jobs := c.Jobs
	if jobs == 0 {
		jobs = max(srv.ParallelJobs, 1)
	}
	o := verify.Options{Store: store, Index: idx, Server: srv.Name, Backup: c.ID, SkipFiles: c.NoFiles,
		WALChecksums: c.WALChecksums, Jobs: jobs}
	if interactive() {
		o.Progress = verifyProgress
	}
	rep, err := verify.Run(ctx, o)
	if err != nil {
		return err
	}
	if a.g.JSON {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		printVerify(a, rep, c.ID != "")
	}
	if !rep.OK {
		return errFailed
	}
	return nil
}

func printVerify(a *App, rep verify.Report, one bool) {
	w := a.out
	fmt.Fprintf(w, "Server %s:\n", rep.Server)
	if len(rep.Backups) == 0 && !one {
		fmt.Fprintf(w, "  no DONE backup to verify\n")
	}
	for _, b := range rep.Backups {
		name := b.ID
		if b.Name != "" {
			name += " (" + b.Name + ")"
		}
		fmt.Fprintf(w, "  Backup %s, %s:\n", name, b.Status)
		if f := b.Files; f != nil {
			if f.Mismatch != "" {
				fmt.Fprintf(w, "    backup_manifest: FAILED: %s\n", f.Mismatch)
			}
			switch {
			case f.Manifest != "":
				fmt.Fprintf(w, "    files: FAILED: %s\n", f.Manifest)
			case len(f.Problems) == 0:
				fmt.Fprintf(w, "    files: OK (%d files, %s match backup_manifest)\n", f.Files, humanBytes(f.Bytes))
			default:
				fmt.Fprintf(w, "    files: FAILED (%d of %d files)\n", len(f.Problems), f.Files)
				for _, p := range f.Problems {
					fmt.Fprintf(w, "      %s\n", p)
				}
			}
		}
		if b.Error != "" {
			fmt.Fprintf(w, "    WAL: FAILED: %s\n", b.Error)
		}
		if ch := b.WAL; ch != nil {
			var tl []string
			for _, s := range ch.Spans {
				tl = append(tl, fmt.Sprint(s.Timeline))
			}
			span := fmt.Sprintf("%s .. %s, timeline %s", ch.Start, ch.End, strings.Join(tl, " -> "))
			if ch.OK() {
				fmt.Fprintf(w, "    WAL: OK (%d segments %s, no gap)\n", ch.Needed, span)
			} else {
				fmt.Fprintf(w, "    WAL: FAILED (%d of %d segments missing, %s)\n", ch.Needed-ch.Present, ch.Needed, span)
				for _, g := range ch.Gaps {
					fmt.Fprintf(w, "      %s\n", g)
				}
				for _, p := range ch.Problems {
					fmt.Fprintf(w, "      %s\n", p)
				}
			}
		}
	}
	for _, p := range rep.ArchiveProblems {
		fmt.Fprintf(w, "  archive: FAILED: %s\n", p)
	}
	if wr := rep.WALChecksums; wr != nil {
		if len(wr.Problems) == 0 {
			fmt.Fprintf(w, "  WAL checksums: OK (%d files, %s)\n", wr.Files, humanBytes(wr.Bytes))
		} else {
			fmt.Fprintf(w, "  WAL checksums: FAILED (%d problems in %d files)\n", len(wr.Problems), wr.Files)
			for _, p := range wr.Problems {
				fmt.Fprintf(w, "    %s\n", p)
			}
		}
	}
	if rep.OK {
		fmt.Fprintf(w, "verify: OK\n")
	} else {
		fmt.Fprintf(w, "verify: FAILED, %d problem(s)\n", len(rep.Problems))
	}
}

// verifyProgress draws a byte progress bar on stderr (used only on a terminal).
func verifyProgress(desc string, total int64) func(int64) {
	if total <= 0 {
		total = -1
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
	return func(n int64) { _ = bar.Add64(n) }
}
