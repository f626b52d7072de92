package check

import (
	"fmt"
	"sort"

	"github.com/walkeeper/walkeeper/internal/record"
)

func (r *runner) done() []record.Backup {
	var out []record.Backup
	for _, b := range r.backups {
		if b.Done() {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (r *runner) backupAge() {
	if r.srv.LastBackupMaximumAge <= 0 || r.backupsErr != nil {
		return
	}
	done := r.done()
	if len(done) == 0 {
		r.add(CheckBackupAge, false, "no DONE backup", fmt.Sprintf("`walkeeper backup %s`", r.srv.Name))
		return
	}
	last := done[len(done)-1]
	at := last.EndTime
	if at.IsZero() {
		at = last.BeginTime
	}
	age := r.since(at)
	if age > r.srv.LastBackupMaximumAge {
		r.add(CheckBackupAge, false, fmt.Sprintf("last DONE backup %s ended %s ago, more than last_backup_maximum_age %s", last.ID, age, r.srv.LastBackupMaximumAge),
			fmt.Sprintf("`walkeeper backup %s` (and check the backup schedule)", r.srv.Name))
		return
	}
	r.add(CheckBackupAge, true, fmt.Sprintf("last DONE backup %s ended %s ago (maximum %s)", last.ID, age, r.srv.LastBackupMaximumAge), "")
}

func (r *runner) redundancy() {
	if r.srv.MinimumRedundancy <= 0 || r.backupsErr != nil {
		return
	}
	n := len(r.done())
	if n < r.srv.MinimumRedundancy {
		r.add(CheckRedundancy, false, fmt.Sprintf("%d DONE backup(s), minimum_redundancy is %d", n, r.srv.MinimumRedundancy),
			fmt.Sprintf("`walkeeper backup %s`", r.srv.Name))
		return
	}
	r.add(CheckRedundancy, true, fmt.Sprintf("%d DONE backup(s), minimum %d", n, r.srv.MinimumRedundancy), "")
}

func (r *runner) failedBackups() {
	if r.backupsErr != nil {
		return
	}
	var lastDone string
	for _, b := range r.backups {
		if b.Done() && b.ID > lastDone {
			lastDone = b.ID
		}
	}
	var failed []record.Backup
	for _, b := range r.backups {
		if b.Status == record.StatusFailed && b.ID > lastDone {
			failed = append(failed, b)
		}
	}
	if len(failed) == 0 {
		r.add(CheckFailedBackup, true, "no FAILED backup since the last DONE one", "")
		return
	}
	sort.Slice(failed, func(i, j int) bool { return failed[i].ID < failed[j].ID })
	newest := failed[len(failed)-1]
	why := newest.Error
	if why == "" {
		why = "no error recorded"
	}
	r.add(CheckFailedBackup, false, fmt.Sprintf("%d FAILED backup(s) since the last DONE one; newest %s: %s", len(failed), newest.ID, why),
		fmt.Sprintf("fix the cause and run `walkeeper backup %s`", r.srv.Name))
}
