package ingest

import (
	"os"
	"path/filepath"
	"sync"

	"github.com/walkeeper/walkeeper/internal/archive"
)

// published remembers the files a writer published into incoming/ by renaming its
// temporary file (archive-wal, put-wal, the receiver's history files: fsutil's temp
// names). Their content was final before they appeared, so a file that is not a
// segment (a history file, a backup label) is ingested at once instead of waiting out
// the quiet period that protects writers writing in place. The ctime test of renamedIn
// misses when write and rename fall in one clock tick; the rename event does not.
type published struct {
	mu    sync.Mutex
	files map[string]os.FileInfo
}

// notePublished records that a temporary file made for target was renamed: the inode
// now under that name in incoming/ is final. Called from the watcher, in event order,
// so before the file's own Create event is queued.
func (p *Pipeline) notePublished(target string) {
	fi, err := os.Lstat(filepath.Join(p.srv.IncomingDir, target))
	if err != nil {
		return
	}
	p.pub.mu.Lock()
	defer p.pub.mu.Unlock()
	if p.pub.files == nil {
		p.pub.files = map[string]os.FileInfo{}
	}
	if len(p.pub.files) > 4096 {
		// Entries whose file went without being processed here (a rescan got there
		// first): drop those whose file is gone.
		for name := range p.pub.files {
			if _, err := os.Lstat(filepath.Join(p.srv.IncomingDir, name)); err != nil {
				delete(p.pub.files, name)
			}
		}
	}
	p.pub.files[target] = fi
}

// published reports whether the incoming file at path (as fi) was published by a
// rename. A later copy beside an earlier one ("<name>.wk-dup-<stamp>") is only ever
// made by Drop's rename, so it always is.
func (p *Pipeline) published(path string, fi os.FileInfo) bool {
	entry := filepath.Base(path)
	if _, dup := archive.SplitDup(entry); dup {
		return true
	}
	p.pub.mu.Lock()
	defer p.pub.mu.Unlock()
	rec, ok := p.pub.files[entry]
	return ok && os.SameFile(rec, fi)
}

// forgetPublished drops the record of an entry that left incoming/.
func (p *Pipeline) forgetPublished(entry string) {
	p.pub.mu.Lock()
	delete(p.pub.files, entry)
	p.pub.mu.Unlock()
}
