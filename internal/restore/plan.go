package restore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/walkeeper/walkeeper/internal/record"
)

// Choice is a backup chosen for a target, with the timeline recovery will follow.
type Choice struct {
	Backup record.Backup
	// TLI is the timeline recovery follows as far as the archive knows now (checked
	// reachable from the backup).
	TLI uint32
	// Setting is what recovery_target_timeline says: "latest" (for --target-tli latest
	// and the default), "current", or "" for TLI's number.
	Setting string
}

// TimelineSetting is the value of recovery_target_timeline. PostgreSQL re-reads the
// archive's timelines while recovery runs under "latest", so a restored standby follows
// a promotion made after the restore; a number would freeze it on TLI.
func (c Choice) TimelineSetting() string {
	if c.Setting != "" {
		return c.Setting
	}
	if c.TLI == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(c.TLI), 10)
}

// timelineSetting maps --target-tli to recovery_target_timeline once tli was resolved
// and checked. The default becomes "latest" when tli is the archive's newest timeline;
// when that newest timeline branched off before the backup ended, PostgreSQL's
// "latest" would refuse to start, so the default names the newest reachable one.
func timelineSetting(flag string, tli uint32, tl *Timelines) string {
	switch flag {
	case "latest", "current":
		return flag
	case "":
		if tli >= tl.Newest() {
			return "latest"
		}
	}
	return ""
}

// CheckBackup validates a target against one backup before anything is written: the
// backup must be DONE, the target must not lie before the backup's end (PostgreSQL can
// only stop once the backup is consistent), and the asked timeline must be reachable.
func CheckBackup(b record.Backup, t Target, tl *Timelines) (Choice, error) {
	if !b.Done() {
		why := ""
		if b.Error != "" {
			why = ": " + b.Error
		}
		return Choice{}, fmt.Errorf("backup %s is %s, only DONE backups can be restored%s", b.ID, b.Status, why)
	}
	if !t.Time.IsZero() && t.Time.Before(b.EndTime) {
		return Choice{}, usage("--target-time %s is before backup %s ended (%s): recovery cannot stop before the backup is consistent; use an older backup or ID auto",
			pgTime(t.Time), b.ID, pgTime(b.EndTime))
	}
	if t.HasLSN && t.LSN < b.EndLSN {
		return Choice{}, usage("--target-lsn %s is before backup %s ended (%s): recovery cannot stop before the backup is consistent; use an older backup or ID auto",
			t.LSN, b.ID, b.EndLSN)
	}
	tli, err := tl.Resolve(t.TLI, b)
	if err != nil {
		return Choice{}, err
	}
	return Choice{Backup: b, TLI: tli, Setting: timelineSetting(t.TLI, tli, tl)}, nil
}

// ChooseAuto picks, for ID "auto", the newest DONE backup that can reach the target: it
// ends before the target time or LSN and can reach the asked timeline. Transaction ids
// and restore point names say nothing about which backup precedes them, so they need
// an explicit ID. backups are oldest first.
func ChooseAuto(backups []record.Backup, t Target, tl *Timelines) (Choice, error) {
	if t.XID != "" || t.Name != "" {
		return Choice{}, usage("ID auto needs --target-time or --target-lsn (a transaction id or restore point does not tell which backup precedes it): give a backup ID, latest or oldest")
	}
	var reasons []string
	for i := len(backups) - 1; i >= 0; i-- {
		b := backups[i]
		if !b.Done() {
			continue
		}
		c, err := CheckBackup(b, t, tl)
		if err == nil {
			return c, nil
		}
		reasons = append(reasons, fmt.Sprintf("%s: %s", b.ID, err.Error()))
	}
	if len(reasons) == 0 {
		return Choice{}, errors.New("no DONE backup to restore")
	}
	return Choice{}, fmt.Errorf("no DONE backup can reach %s: %s", t, strings.Join(reasons, "; "))
}
