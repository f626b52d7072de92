package verify

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/walkeeper/walkeeper/internal/archive"
	"github.com/walkeeper/walkeeper/internal/basebackup"
	"github.com/walkeeper/walkeeper/internal/progress"
)

// recordedSums is what verify knows of a backup's files without decoding them: the
// CRC-32C each file had as it streamed (basebackup's sums.go), vouched for by reading
// each stored object and finding it byte for byte as stored. A file without a recorded
// sum, in an object that was not recorded, or in an object that changed, is decoded
// and summed as --deep sums every file: the report then names the damaged files, not
// only the object. alg is the manifest's algorithm: only CRC-32C was recorded. The
// objects' problems come with the manifest paths of the files each one holds.
func recordedSums(ctx context.Context, src StoredBackup, stored []File, objs []basebackup.StoredObject, alg string, workers int, progressFn func(int64)) ([]fileSum, []objectProblem, int) {
	raw := map[string]int64{} // decompressed bytes per object, for progress
	held := map[string][]string{}
	for _, f := range stored {
		if e, ok := f.Ref.(basebackup.Entry); ok && e.Key != "" {
			raw[e.Key] += e.Size
			held[e.Key] = append(held[e.Key], f.Path)
		}
	}
	problems, bad := checkObjects(ctx, src, objs, raw, workers, progressFn)
	for i := range problems {
		problems[i].files = held[problems[i].key]
	}
	recorded := make(map[string]bool, len(objs))
	for _, o := range objs {
		recorded[o.Key] = true
	}
	sums := make([]fileSum, len(stored))
	var need []File
	var at []int // need[j] is stored[at[j]]
	for i, f := range stored {
		e, ok := f.Ref.(basebackup.Entry)
		if ok && e.Sum != "" && strings.EqualFold(alg, "CRC32C") && (e.Key == "" || recorded[e.Key] && !bad[e.Key]) {
			sums[i] = fileSum{alg: alg, n: e.Size, sum: strings.ToLower(e.Sum)}
			continue
		}
		need = append(need, f)
		at = append(at, i)
	}
	if len(need) > 0 {
		got := sumFiles(ctx, src, need, func(int) string { return alg }, workers, nil)
		for j, i := range at {
			sums[i] = got[j]
		}
	}
	return sums, problems, len(need)
}

// objectProblem is a stored object that is not as the backup stored it, with the
// files it holds.
type objectProblem struct {
	problem Problem
	key     string
	files   []string
}

// checkObjects reads every recorded object of a backup (on workers goroutines) and
// compares its size and xxHash64 with the record: the problems found, and the keys
// that failed. raw is each object's decompressed size, which progress counts in.
func checkObjects(ctx context.Context, src StoredBackup, objs []basebackup.StoredObject, raw map[string]int64, workers int, progressFn func(int64)) ([]objectProblem, map[string]bool) {
	prefix := archive.BackupDataPrefix(src.Server, src.ID)
	failed := make([]bool, len(objs)) // each index is written by one goroutine
	problems, _ := parallel(ctx, workers, len(objs), func(i int) (*objectProblem, int64) {
		o := objs[i]
		op := &objectProblem{key: o.Key, problem: Problem{Path: strings.TrimPrefix(o.Key, prefix), Problem: "object", Expected: fmt.Sprintf("%d bytes, xxh64 %s", o.Size, o.XXH64)}}
		p := &op.problem
		failed[i] = true
		r, err := src.Store.Get(ctx, o.Key)
		if err != nil {
			p.Problem, p.Expected, p.Detail = "object-unreadable", "", err.Error()
			return op, 0
		}
		defer r.Close()
		h := xxhash.New()
		var w io.Writer = h
		if progressFn != nil && o.Size > 0 {
			w = progress.Writer{W: h, Fn: func(n int64) { progressFn(n * raw[o.Key] / o.Size) }}
		}
		n, err := io.Copy(w, r)
		if err != nil {
			p.Problem, p.Expected, p.Detail = "object-unreadable", "", fmt.Sprintf("after %d bytes: %v", n, err)
			return op, n
		}
		if got := basebackup.XXH64(h); n != o.Size || got != o.XXH64 {
			p.Got = fmt.Sprintf("%d bytes, xxh64 %s", n, got)
			return op, n
		}
		failed[i] = false
		return nil, n
	})
	bad := map[string]bool{}
	for i, f := range failed {
		if f {
			bad[objs[i].Key] = true
		}
	}
	return problems, bad
}
