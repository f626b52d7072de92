package verify

import "fmt"

// Problem is one stored file that failed verification: a backup's file, named by Path
// (relative to the data directory) and checked against backup_manifest, or an archived
// WAL file, named by Name and checked against its index record. Exactly one of Path and
// Name is set, so `verify --json` prints each as it always has: "path" (or "name"),
// then "problem", "expected", "got" and "detail".
type Problem struct {
	Name string `json:"name,omitempty"`
	Path string `json:"path,omitempty"`
	// Problem is the kind: checksum, size, missing, extra or unreadable for a backup's
	// file, object or object-unreadable for one of its stored objects (Path is then the
	// object's name in the backup); checksum, unreadable, not-stored or not-indexed for
	// a WAL file.
	Problem string `json:"problem"`
	// Expected and Got say what differed; Detail is the error of an unreadable file.
	Expected string `json:"expected,omitempty"`
	Got      string `json:"got,omitempty"`
	Detail   string `json:"detail,omitempty"`
}

// String is the one line a DBA reads.
func (p Problem) String() string {
	if p.Path == "" {
		return p.walString()
	}
	switch p.Problem {
	case "checksum", "size":
		return fmt.Sprintf("%s: %s mismatch: manifest %s, stored file %s", p.Path, p.Problem, p.Expected, p.Got)
	case "missing":
		return fmt.Sprintf("%s: in the manifest but not stored", p.Path)
	case "extra":
		return fmt.Sprintf("%s: stored but not in the manifest", p.Path)
	case "object":
		return fmt.Sprintf("stored object %s: changed since the backup: recorded %s, stored %s", p.Path, p.Expected, p.Got)
	case "object-unreadable":
		return fmt.Sprintf("stored object %s: unreadable: %s", p.Path, p.Detail)
	}
	return fmt.Sprintf("%s: %s: %s", p.Path, p.Problem, p.Detail)
}

func (p Problem) walString() string {
	switch p.Problem {
	case "checksum":
		return fmt.Sprintf("WAL %s: content does not match the index: sha256 %s recorded, %s stored", p.Name, p.Expected, p.Got)
	case "not-stored":
		return fmt.Sprintf("WAL %s: in the index but not in the archive", p.Name)
	case "not-indexed":
		return fmt.Sprintf("WAL %s: in the archive but not in the index (run `walkeeper index rebuild`)", p.Name)
	}
	return fmt.Sprintf("WAL %s: %s: %s", p.Name, p.Problem, p.Detail)
}
