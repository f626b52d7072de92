package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/catalog"
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
	results := []check.Result{}
	for _, srv := range servers {
		name := srv.Name
		deps := check.Deps{Server: srv, ConfigFile: cfg.File, Binary: bin, Store: store, Index: idx, IndexErr: idxErr, Daemon: d,
			Receiver: func() (ingest.ReceiverState, bool) { return receiverState(a, name) }}
		results = append(results, check.Run(ctx, deps)...)
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

// VerifyBackupResult is one backup in `verify --json`.
type VerifyBackupResult struct {
	ID     string               `json:"id"`
	Name   string               `json:"name,omitempty"`
	Status string               `json:"status"`
	Files  *verify.BackupReport `json:"files,omitempty"`
	WAL    *verify.Chain        `json:"wal,omitempty"`
	Error  string               `json:"error,omitempty"`
}

// VerifyReport is `verify --json`.
type VerifyReport struct {
	Server          string               `json:"server"`
	OK              bool                 `json:"ok"`
	Backups         []VerifyBackupResult `json:"backups"`
	NewestSegment   string               `json:"newest_segment,omitempty"`
	ArchiveProblems []string             `json:"archive_problems,omitempty"`
	WALChecksums    *verify.WALReport    `json:"wal_checksums,omitempty"`
	// Problems is every problem found, one line each.
	Problems []string `json:"problems"`
}

// Run implements the command.
func (c *VerifyCmd) Run(a *App) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	srv, err := a.Server(c.Server)
	if err != nil {
		return usageErr("%v", err)
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
	if jobs <= 0 {
		jobs = max(srv.ParallelJobs, 1)
	}
	all, err := idx.ListBackups(ctx, srv.Name)
	if err != nil {
		return err
	}
	var chosen []catalog.Backup
	if c.ID != "" {
		b, err := basebackup.Resolve(all, c.ID)
		if err != nil {
			return err
		}
		chosen = []catalog.Backup{b}
	} else {
		for _, b := range all {
			if b.Done() {
				chosen = append(chosen, b)
			}
		}
	}
	rep := VerifyReport{Server: srv.Name, Backups: []VerifyBackupResult{}, Problems: []string{}}
	arch, err := verify.LoadArchive(ctx, store, srv.Name)
	if err != nil {
		return err
	}
	rep.NewestSegment = arch.Newest()
	rep.ArchiveProblems = arch.Problems
	rep.Problems = append(rep.Problems, arch.Problems...)
	segSize := uint64(0)
	if id, err := ingest.LoadIdentity(ctx, store, srv.Name); err == nil {
		segSize = id.SegSize
	}
	for _, b := range chosen {
		r := VerifyBackupResult{ID: b.ID, Name: b.Name, Status: b.Status}
		if !c.NoFiles {
			fr, err := verify.VerifyBackup(ctx, store, b, jobs, verifyProgress(fmt.Sprintf("verify %s", b.ID), b.Size))
			if err != nil {
				return err
			}
			r.Files = &fr
			if fr.Manifest != "" {
				rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: %s", b.ID, fr.Manifest))
			}
			if fr.Mismatch != "" {
				rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: %s", b.ID, fr.Mismatch))
			}
			for _, p := range fr.Problems {
				rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: %s", b.ID, p))
			}
		}
		if b.BeginWAL == "" && b.BeginLSN == 0 {
			r.Error = "the backup records no begin WAL"
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: %s", b.ID, r.Error))
		} else {
			ch, err := arch.ChainFor(b, segSize)
			if err != nil {
				r.Error = err.Error()
				rep.Problems = append(rep.Problems, r.Error)
			} else {
				r.WAL = &ch
				for _, p := range ch.Problems {
					rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: WAL: %s", b.ID, p))
				}
				for _, g := range ch.Gaps {
					rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: WAL: %s", b.ID, g))
				}
			}
		}
		rep.Backups = append(rep.Backups, r)
	}
	if c.WALChecksums {
		var total int64
		if st, err := idx.WALStats(ctx, srv.Name); err == nil {
			total = st.RawBytes
		}
		wr, err := verify.VerifyWAL(ctx, store, idx, srv.Name, arch, jobs, verifyProgress("verify WAL", total))
		if err != nil {
			return err
		}
		rep.WALChecksums = &wr
		for _, p := range wr.Problems {
			rep.Problems = append(rep.Problems, p.String())
		}
	}
	rep.OK = len(rep.Problems) == 0
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

func printVerify(a *App, rep VerifyReport, one bool) {
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

// verifyProgress is a byte progress bar on a terminal, nil otherwise.
func verifyProgress(desc string, total int64) func(int64) {
	if !interactive() {
		return nil
	}
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
