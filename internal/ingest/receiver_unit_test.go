package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/walkeeper/walkeeper/internal/segments"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		bad  bool
	}{
		{"16MB", 16 << 20, false}, {"1GB", 1 << 30, false}, {"64MB", 64 << 20, false},
		{"1024kB", 1 << 20, false}, {"16777216", 16 << 20, false}, {"16 MB", 16 << 20, false},
		{"16XB", 0, true}, {"MB", 0, true}, {"", 0, true},
	} {
		got, err := parseSize(c.in)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, bad %v", c.in, got, err, c.want, c.bad)
		}
	}
}

func TestValidSlotName(t *testing.T) {
	for name, ok := range map[string]bool{"walkeeper_pg1": true, "a": true, "pg-1": false, "Walkeeper": false,
		"x; DROP": false, "": false, string(make([]byte, 64)): false} {
		if err := ValidSlotName(name); (err == nil) != ok {
			t.Errorf("ValidSlotName(%q) = %v, want ok %v", name, err, ok)
		}
	}
}

// TestStartPosition: where a receiver without an in-process position starts, from what
// streaming/, incoming/ and the archive hold, else the slot, else the server.
func TestStartPosition(t *testing.T) {
	const seg = 16 << 20
	sys := pglogrepl.IdentifySystemResult{Timeline: 3, XLogPos: pglogrepl.LSN(0x9123456)}
	slot := slotInfo{exists: true, restartLSN: 0x5800000, restartTLI: 2}
	name := func(tli uint32, segno uint64) string { return segments.SegmentFileName(tli, segno, seg) }
	for _, c := range []struct {
		desc      string
		partials  []string
		incoming  []string
		archived  string
		slot      slotInfo
		reset     bool
		wantTLI   uint32
		wantLSN   segments.LSN
		wantLive  []string // .partial left in streaming/
		wantMoved []string // handed to incoming/
	}{
		{desc: "nothing: the server's current segment", slot: slotInfo{exists: true}, wantTLI: 3, wantLSN: 0x9000000},
		{desc: "slot restart_lsn", slot: slot, wantTLI: 2, wantLSN: 0x5000000},
		{desc: "after the newest archived segment", archived: name(2, 6), slot: slot, wantTLI: 2, wantLSN: 0x7000000},
		{desc: "incoming/ newer than the archive", archived: name(2, 6), incoming: []string{name(2, 7), "00000002.history"}, slot: slot, wantTLI: 2, wantLSN: 0x8000000},
		{desc: "live partial at the archive's end", partials: []string{name(2, 7)}, archived: name(2, 6), slot: slot,
			wantTLI: 2, wantLSN: 0x7000000, wantLive: []string{name(2, 7)}},
		{desc: "two partials: the older is archived as a .partial", partials: []string{name(2, 6), name(2, 7)}, slot: slot,
			wantTLI: 2, wantLSN: 0x7000000, wantLive: []string{name(2, 7)}, wantMoved: []string{name(2, 6)}},
		{desc: "archive ahead of a stale partial", partials: []string{name(2, 5)}, archived: name(2, 8), slot: slot,
			wantTLI: 2, wantLSN: 0x9000000, wantMoved: []string{name(2, 5)}},
		{desc: "reset discards partials and ignores the archive", partials: []string{name(2, 7)}, archived: name(2, 8), slot: slot, reset: true,
			wantTLI: 3, wantLSN: 0x9000000},
	} {
		t.Run(c.desc, func(t *testing.T) {
			dir := t.TempDir()
			st, in := filepath.Join(dir, "streaming"), filepath.Join(dir, "incoming")
			os.MkdirAll(st, 0o700)
			os.MkdirAll(in, 0o700)
			for _, p := range c.partials {
				os.WriteFile(filepath.Join(st, p+".partial"), []byte("x"), 0o600)
			}
			for _, p := range c.incoming {
				os.WriteFile(filepath.Join(in, p), []byte("x"), 0o600)
			}
			r, err := NewReceiver(ReceiverConfig{Server: "s", Conninfo: "host=x", SlotName: "s", StreamingDir: st, IncomingDir: in, Reset: c.reset,
				ArchivedEnd: func(context.Context) (string, error) { return c.archived, nil }})
			if err != nil {
				t.Fatal(err)
			}
			r.segSize = seg
			tli, lsn, src, err := r.startPosition(context.Background(), sys, c.slot)
			if err != nil {
				t.Fatal(err)
			}
			if tli != c.wantTLI || lsn != c.wantLSN {
				t.Fatalf("start %d/%s (%s), want %d/%s", tli, lsn, src, c.wantTLI, c.wantLSN)
			}
			for _, p := range c.wantLive {
				if _, err := os.Stat(filepath.Join(st, p+".partial")); err != nil {
					t.Errorf("live partial %s: %v", p, err)
				}
			}
			for _, p := range c.wantMoved {
				if _, err := os.Stat(filepath.Join(in, p+".partial")); err != nil {
					t.Errorf("stale partial %s not in incoming/: %v", p, err)
				}
			}
			left, _ := filepath.Glob(filepath.Join(st, "*.partial"))
			if len(left) != len(c.wantLive) {
				t.Errorf("streaming/ holds %v, want %v", left, c.wantLive)
			}
		})
	}
}

// TestReconnectDelay: no wait after a session that made progress, the smallest wait
// shortly after progress, doubling waits bounded by the maximum while the server has
// been unreachable for longer, back to none at once.
func TestReconnectDelay(t *testing.T) {
	const minB, maxB = 100 * time.Millisecond, time.Second
	b := minB
	var got []time.Duration
	for _, c := range []struct{ progressed, recent bool }{
		{true, true}, {false, true}, {false, true}, {false, false}, {false, false}, {false, false}, {false, false},
		{false, false}, {true, true}, {false, false},
	} {
		got = append(got, reconnectDelay(c.progressed, c.recent, &b, minB, maxB))
	}
	want := []time.Duration{0, minB, minB, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond,
		800 * time.Millisecond, time.Second, 0, 100 * time.Millisecond}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
}
