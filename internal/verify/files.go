package verify

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/walkeeper/walkeeper/internal/progress"
)

// fileSum is what reading one stored file gave: its length and checksum, or why it
// could not be read (the Problem to report, without the path).
type fileSum struct {
	alg  string // the algorithm sum was taken with ("" or "none": no sum)
	n    int64
	sum  string // lower-case hex
	fail *Problem
}

// sumFiles reads files with workers goroutines (by stored object when src is a
// UnitSource: each bundle decoded once) and sums each with alg(i). It reads the files
// without a manifest, so verify can start on them while the manifest is parsed.
func sumFiles(ctx context.Context, src Source, files []File, alg func(i int) string, workers int, progressFn func(int64)) []fileSum {
	sums := make([]fileSum, len(files))
	read := func(i int, r io.Reader) {
		a := alg(i)
		h, _ := newChecksum(a) // validated by ParseManifest, or CRC32C
		var w io.Writer = io.Discard
		if h != nil {
			w = h
		}
		if progressFn != nil {
			w = progress.Writer{W: w, Fn: progressFn}
		}
		n, err := io.Copy(w, r)
		s := fileSum{alg: a, n: n}
		if err != nil {
			s.fail = &Problem{Problem: "unreadable", Detail: fmt.Sprintf("after %d bytes: %v", n, err)}
		} else if h != nil {
			s.sum = hex.EncodeToString(h.Sum(nil))
		}
		sums[i] = s
	}
	if us, ok := src.(UnitSource); ok {
		units := us.Units(files)
		parallel(ctx, workers, len(units), func(u int) (*struct{}, int64) {
			err := units[u].Read(ctx, func(i int, r io.Reader) error {
				read(i, r)
				return nil
			})
			if err != nil && ctx.Err() == nil {
				for _, i := range units[u].Files {
					sums[i] = fileSum{alg: alg(i), fail: &Problem{Problem: "unreadable", Detail: err.Error()}}
				}
			}
			return nil, 0
		})
		return sums
	}
	parallel(ctx, workers, len(files), func(i int) (*struct{}, int64) {
		r, err := src.Open(ctx, files[i])
		if err != nil {
			sums[i] = fileSum{alg: alg(i), fail: &Problem{Problem: "unreadable", Detail: err.Error()}}
			return nil, 0
		}
		read(i, r)
		r.Close()
		return nil, 0
	})
	return sums
}

// judge compares what reading a file gave with its manifest entry.
func judge(f File, mf *ManifestFile, s fileSum) *Problem {
	if s.fail != nil {
		p := *s.fail
		p.Path = f.Path
		return &p
	}
	if s.n != mf.Size {
		return &Problem{Path: f.Path, Problem: "size", Expected: fmt.Sprintf("%d bytes", mf.Size), Got: fmt.Sprintf("%d bytes", s.n)}
	}
	if s.sum != "" && !strings.EqualFold(s.sum, mf.Checksum) {
		alg := strings.ToUpper(mf.ChecksumAlgorithm)
		return &Problem{Path: f.Path, Problem: "checksum", Expected: alg + " " + strings.ToLower(mf.Checksum), Got: alg + " " + s.sum}
	}
	return nil
}

// pairing is the stored files matched with the manifest: the pairs to judge (indexes
// into stored, with their entries) and the files stored but not listed or listed but
// not stored.
type pairing struct {
	idx      []int
	entries  []*ManifestFile
	problems []Problem
}

// match pairs the stored files with the manifest. It needs no file read, so verify
// runs it while the files are summed (on a schema of 37,000 files, 60 ms).
func match(m *Manifest, stored []File) pairing {
	want := make(map[string]int, len(m.Files))
	for i := range m.Files {
		want[m.Files[i].Path] = i
	}
	var pr pairing
	pr.idx = make([]int, 0, len(stored))
	pr.entries = make([]*ManifestFile, 0, len(stored))
	have := make([]bool, len(m.Files))
	for i, f := range stored {
		k, ok := want[f.Path]
		if !ok {
			if !notInManifest[f.Path] {
				pr.problems = append(pr.problems, Problem{Path: f.Path, Problem: "extra"})
			}
			continue
		}
		have[k] = true
		pr.idx = append(pr.idx, i)
		pr.entries = append(pr.entries, &m.Files[k])
	}
	for k, mf := range m.Files {
		if !have[k] {
			pr.problems = append(pr.problems, Problem{Path: mf.Path, Problem: "missing", Expected: fmt.Sprintf("%d bytes", mf.Size)})
		}
	}
	return pr
}

// sameAlg reports whether a sum taken with a serves for a manifest entry of algorithm b.
func sameAlg(a, b string) bool {
	none := func(s string) bool { return s == "" || strings.EqualFold(s, "none") }
	return strings.EqualFold(a, b) || none(a) && none(b)
}

// compare judges the stored files against the manifest (paired by match) with sums
// already taken (sums[i] for stored[i]); a file summed with another algorithm than its entry names is read
// again. Problems are sorted by path.
func compare(ctx context.Context, pr pairing, src Source, stored []File, sums []fileSum, workers int) (FilesReport, error) {
	var rep FilesReport
	idx, entries := pr.idx, pr.entries
	rep.Problems = slices.Clone(pr.problems)
	var again []int // positions in idx
	for k, i := range idx {
		if !sameAlg(sums[i].alg, entries[k].ChecksumAlgorithm) {
			again = append(again, k)
		}
	}
	if len(again) > 0 {
		files := make([]File, len(again))
		for j, k := range again {
			files[j] = stored[idx[k]]
		}
		resum := sumFiles(ctx, src, files, func(j int) string { return entries[again[j]].ChecksumAlgorithm }, workers, nil)
		for j, k := range again {
			sums[idx[k]] = resum[j]
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	for k, i := range idx {
		if p := judge(stored[i], entries[k], sums[i]); p != nil {
			rep.Problems = append(rep.Problems, *p)
		}
		rep.Bytes += sums[i].n
	}
	rep.Files = len(idx)
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Path < rep.Problems[j].Path })
	return rep, nil
}

// VerifyFiles reads every stored file with workers goroutines and compares it with the
// manifest: size and checksum of each, files missing from the store and files the
// manifest does not list. progress, if set, receives bytes read (from several
// goroutines). Problems are sorted by path.
func VerifyFiles(ctx context.Context, m *Manifest, src Source, workers int, progressFn func(int64)) (FilesReport, error) {
	stored, err := src.Files(ctx)
	if err != nil {
		return FilesReport{}, err
	}
	want := make(map[string]string, len(m.Files))
	for _, f := range m.Files {
		want[f.Path] = f.ChecksumAlgorithm
	}
	// Only what the manifest lists is read: a stored file it does not list is reported
	// as extra, whatever its content.
	var listed []File
	var at []int // listed[j] is stored[at[j]]
	for i, f := range stored {
		if _, ok := want[f.Path]; ok {
			listed = append(listed, f)
			at = append(at, i)
		}
	}
	got := sumFiles(ctx, src, listed, func(j int) string { return want[listed[j].Path] }, workers, progressFn)
	sums := make([]fileSum, len(stored))
	for j, i := range at {
		sums[i] = got[j]
	}
	return compare(ctx, match(m, stored), src, stored, sums, workers)
}

// firstChecksumAlgorithm is the Checksum-Algorithm of a manifest's first file entry,
// found without parsing it: PostgreSQL sums every file of a backup with one algorithm,
// so verify sums the stored files with it while the manifest is parsed (a file whose
// entry names another is read again). "" when the manifest names none.
func firstChecksumAlgorithm(manifest []byte) string {
	const key = `"Checksum-Algorithm"`
	i := bytes.Index(manifest, []byte(key))
	if i < 0 {
		return ""
	}
	rest := bytes.TrimLeft(manifest[i+len(key):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return ""
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' {
		return ""
	}
	end := bytes.IndexByte(rest[1:], '"')
	if end < 0 {
		return ""
	}
	alg := string(rest[1 : 1+end])
	if _, err := newChecksum(alg); err != nil {
		return ""
	}
	return alg
}
