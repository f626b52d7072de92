package segments

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

const pgBin = "/usr/lib/postgresql/15/bin"

// initdbCluster creates a throw-away cluster with the given WAL segment size (MiB) and
// returns its data directory and system identifier. initdb alone writes the first
// segment, so no server is started.
func initdbCluster(t *testing.T, walSegMiB int) (string, uint64) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping test that needs the PostgreSQL binaries (initdb)")
	}
	initdb := filepath.Join(pgBin, "initdb")
	if _, err := os.Stat(initdb); err != nil {
		if os.Getenv("WALKEEPER_NO_PG") == "1" {
			t.Skip("PostgreSQL 15 not installed and WALKEEPER_NO_PG=1")
		}
		t.Fatalf("real-WAL test needs %s (set WALKEEPER_NO_PG=1 to skip): %v", initdb, err)
	}
	root, err := os.MkdirTemp("", "walkeeper-segments-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run its tools as the postgres user.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres OS user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	run := func(name string, args ...string) string {
		cmd := exec.Command(filepath.Join(pgBin, name), args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	data := filepath.Join(root, "data")
	run("initdb", "-D", data, "-N", "-A", "trust", "-U", "postgres", "--no-instructions",
		fmt.Sprintf("--wal-segsize=%d", walSegMiB))
	ctl := run("pg_controldata", "-D", data)
	m := regexp.MustCompile(`(?m)^Database system identifier:\s+(\d+)$`).FindStringSubmatch(ctl)
	if m == nil {
		t.Fatalf("no system identifier in pg_controldata output:\n%s", ctl)
	}
	sys, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	m = regexp.MustCompile(`(?m)^Bytes per WAL segment:\s+(\d+)$`).FindStringSubmatch(ctl)
	if m == nil || m[1] != strconv.Itoa(walSegMiB<<20) {
		t.Fatalf("pg_controldata segment size %v, want %d", m, walSegMiB<<20)
	}
	return data, sys
}

func TestValidateSegmentRealWAL(t *testing.T) {
	for _, mib := range []int{1, 16, 64} {
		t.Run(fmt.Sprintf("%dMiB", mib), func(t *testing.T) {
			t.Parallel()
			data, sys := initdbCluster(t, mib)
			segSize := uint64(mib) << 20
			// Small segments fill up during initdb and its checkpoints recycle the first
			// ones: take the oldest segment that is left.
			ents, err := os.ReadDir(filepath.Join(data, "pg_wal"))
			if err != nil {
				t.Fatal(err)
			}
			var fileName string
			for _, e := range ents {
				if n, err := Parse(e.Name()); err == nil && n.Kind == KindSegment {
					fileName = e.Name()
					break
				}
			}
			if fileName == "" {
				t.Fatal("initdb left no WAL segment in pg_wal")
			}
			seg, err := os.ReadFile(filepath.Join(data, "pg_wal", fileName))
			if err != nil {
				t.Fatal(err)
			}
			name, err := Parse(fileName)
			if err != nil {
				t.Fatal(err)
			}
			if err := name.ValidFor(segSize); err != nil {
				t.Fatal(err)
			}
			segNo := name.SegNo(segSize)
			exp := Expect{SystemID: sys, SegSize: segSize, Magic: 0xD110}

			h, err := ParseLongHeader(seg)
			if err != nil {
				t.Fatal(err)
			}
			if v, ok := MagicVersion(h.Magic); !ok || v != 15 {
				t.Errorf("magic 0x%04X maps to %d, %v; want PostgreSQL 15", h.Magic, v, ok)
			}
			if h.SystemID != sys || uint64(h.SegSize) != segSize || h.Timeline != 1 || h.PageAddr != SegStart(segNo, segSize) || h.BlockSize != 8192 {
				t.Errorf("header %+v disagrees with pg_controldata (sysid %d, seg size %d)", h, sys, segSize)
			}
			if err := ValidateSegment(name, int64(len(seg)), seg, exp); err != nil {
				t.Fatalf("real segment rejected: %v", err)
			}
			if err := ValidateSegment(name, int64(len(seg)), seg[:LongHeaderSize], Expect{}); err != nil {
				t.Fatalf("real segment rejected without expectations: %v", err)
			}
			partial, _ := Parse(fileName + ".partial")
			t.Logf("validated %s (segment %d, sysid %d)", fileName, segNo, sys)
			if err := ValidateSegment(partial, 8192, seg[:8192], exp); err != nil {
				t.Fatalf("real .partial head rejected: %v", err)
			}
			// Same content on a later timeline (a copy at a timeline switch) is fine.
			newer, _ := Parse("00000002" + fileName[8:])
			if err := ValidateSegment(newer, int64(len(seg)), seg, exp); err != nil {
				t.Fatalf("old-timeline first page under a newer timeline rejected: %v", err)
			}

			junk := make([]byte, len(seg))
			if _, err := rand.Read(junk); err != nil {
				t.Fatal(err)
			}
			junk[0], junk[1] = 0x34, 0x12
			renamedName := SegmentFileName(1, segNo+1, segSize)
			renamed, _ := Parse(renamedName)
			bad := []struct {
				desc string
				name Name
				size int64
				data []byte
				exp  Expect
				want string
			}{
				{"wrong sysid", name, int64(len(seg)), seg, Expect{SystemID: sys + 1, SegSize: segSize}, "system identifier"},
				{"renamed", renamed, int64(len(seg)), seg, exp, fmt.Sprintf("page address %s does not match name %s (expects %s)", SegStart(segNo, segSize), renamedName, SegStart(segNo+1, segSize))},
				{"truncated", name, int64(len(seg) / 2), seg[:len(seg)/2], exp, "is not the segment size"},
				{"random bytes", name, int64(len(junk)), junk, exp, "not a WAL file: bad magic 0x1234"},
				{"other segment size", name, int64(len(seg)), seg, Expect{SegSize: segSize * 2}, "is not the segment size"},
				{"other version", name, int64(len(seg)), seg, Expect{Magic: 0xD113}, "PostgreSQL 16"},
				{"older timeline name", name, int64(len(seg)), bytes.Clone(seg), exp, ""},
			}
			// Make the last case a first page claiming timeline 2 under a timeline-1 name.
			bad[len(bad)-1].data[4] = 2
			bad[len(bad)-1].want = "timeline 2"
			for _, b := range bad {
				err := ValidateSegment(b.name, b.size, b.data, b.exp)
				var ve *ValidationError
				if err == nil || !errors.As(err, &ve) || !strings.Contains(ve.Reason, b.want) {
					t.Errorf("%s: err = %v, want a ValidationError containing %q", b.desc, err, b.want)
				}
			}
		})
	}
}
