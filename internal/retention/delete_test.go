package retention

import (
	"errors"
	"strings"
	"testing"

	"github.com/walkeeper/walkeeper/internal/index"
	"github.com/walkeeper/walkeeper/internal/record"
)

func TestCheckDelete(t *testing.T) {
	done := func(id string) record.Backup { return record.Backup{ID: id, Status: record.StatusDone} }
	failed := record.Backup{ID: "f", Status: record.StatusFailed}
	three := []record.Backup{done("a"), failed, done("b"), done("c")}
	for _, c := range []struct {
		name    string
		backups []record.Backup
		id      string
		min     int
		force   bool
		want    string // "" = allowed
	}{
		{"no minimum", three, "a", 0, false, ""},
		{"keeps the minimum", three, "a", 2, false, ""},
		{"would go below", three, "a", 3, false, "would leave 2 DONE backup(s), below minimum_redundancy 3"},
		{"last one", []record.Backup{done("a")}, "a", 1, false, "would leave 0 DONE backup(s)"},
		{"forced", three, "a", 3, true, ""},
		{"failed backups never count", three, "f", 3, false, ""},
		{"failed backups do not make up the minimum", []record.Backup{done("a"), failed, failed}, "a", 1, false, "below minimum_redundancy 1"},
		{"unknown", three, "zz", 0, false, "backup zz of pg1"},
	} {
		err := CheckDelete("pg1", c.backups, c.id, c.min, c.force)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		if strings.Contains(c.want, "minimum_redundancy") && (!errors.Is(err, ErrBelowRedundancy) || !strings.Contains(err.Error(), "--force")) {
			t.Errorf("%s: want ErrBelowRedundancy naming --force: %v", c.name, err)
		}
		if c.name == "unknown" && !errors.Is(err, index.ErrNotFound) {
			t.Errorf("unknown: %v", err)
		}
	}
}
