package restore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/walkeeper/walkeeper/internal/segments"
)

// TestGetToStdout: get-wal with "-" as destination (behind ssh) writes the file to
// standard output and nothing else, writes nothing for a missing file, serves a
// .partial only when not told --standby (NoPartial), and refuses --prefetch.
func TestGetToStdout(t *testing.T) {
	ctx := context.Background()
	store, home := newArchive(t)
	seg := func(n uint64) string { return segments.SegmentFileName(1, n, testSeg) }
	putArchived(t, store, "pg1", seg(1), segData(seg(1)))
	putArchived(t, store, "pg1", seg(2)+".partial", segData("partial-archived----"))
	var out bytes.Buffer
	stdout = &out
	defer func() { stdout = os.Stdout }()
	o := GetOptions{IncomingDir: filepath.Join(home, "pg1", "incoming")}

	if from, err := Get(ctx, store, "pg1", seg(1), StdoutDest, o); err != nil || from != FromArchive || !bytes.Equal(out.Bytes(), segData(seg(1))) {
		t.Fatalf("archived segment to stdout: from %s, %d bytes, %v", from, out.Len(), err)
	}
	out.Reset()
	if _, err := Get(ctx, store, "pg1", seg(9), StdoutDest, o); !errors.Is(err, ErrNotArchived) || out.Len() != 0 {
		t.Fatalf("missing segment: %v with %d bytes written, want ErrNotArchived and nothing", err, out.Len())
	}
	if from, err := Get(ctx, store, "pg1", seg(2), StdoutDest, o); err != nil || from != FromArchivedPartial || !bytes.Equal(out.Bytes(), segData("partial-archived----")) {
		t.Fatalf("partial to stdout: from %s, %d bytes, %v", from, out.Len(), err)
	}
	out.Reset()
	o.NoPartial = true
	if _, err := Get(ctx, store, "pg1", seg(2), StdoutDest, o); !errors.Is(err, ErrPartialNotFinal) || out.Len() != 0 {
		t.Fatalf("partial with --standby: %v with %d bytes, want ErrPartialNotFinal and nothing", err, out.Len())
	}
	if _, err := Get(ctx, store, "pg1", seg(1), StdoutDest, GetOptions{Prefetch: 4}); err == nil || out.Len() != 0 {
		t.Fatalf("--prefetch with -: %v", err)
	}
	// The same refusal for a path destination: NoPartial is the asker's word.
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if _, err := Get(ctx, store, "pg1", seg(2), dest, GetOptions{NoPartial: true}); !errors.Is(err, ErrPartialNotFinal) {
		t.Fatalf("partial with NoPartial to a path: %v", err)
	}
}

// TestGetRemote: with Remote set (get-wal --ssh), the file comes from it and not from
// the store, a prefetch is kicked as for an archived file, and its not-archived answer
// is ErrNotArchived.
func TestGetRemote(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	name := segments.SegmentFileName(1, 5, testSeg)
	var asked []string
	o := GetOptions{Remote: func(_ context.Context, walName, dest string) error {
		asked = append(asked, walName)
		if walName != name {
			return ErrNotArchived
		}
		return os.WriteFile(dest, []byte("from the backup host"), 0o600)
	}}
	dest := filepath.Join(dir, "RECOVERYXLOG")
	if from, err := Get(ctx, nil, "pg1", name, dest, o); err != nil || from != FromRemote {
		t.Fatalf("Get with Remote: %s %v", from, err)
	}
	if b, _ := os.ReadFile(dest); string(b) != "from the backup host" {
		t.Fatalf("dest holds %q", b)
	}
	if _, err := Get(ctx, nil, "pg1", segments.SegmentFileName(1, 6, testSeg), dest, o); !errors.Is(err, ErrNotArchived) {
		t.Fatalf("missing through Remote: %v", err)
	}
	if len(asked) != 2 {
		t.Fatalf("Remote asked %v", asked)
	}
}
