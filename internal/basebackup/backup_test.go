package basebackup_test

import (
	"testing"

	"github.com/walkeeper/walkeeper/internal/record"
	"github.com/walkeeper/walkeeper/internal/wktest"
)

func listBackups(t *testing.T, env *wktest.Env) []map[string]any {
	t.Helper()
	var rows []map[string]any
	env.JSON(t, &rows, "list-backups", "pg1")
	return rows
}

func showBackup(t *testing.T, env *wktest.Env, id string) record.Backup {
	t.Helper()
	var b record.Backup
	env.JSON(t, &b, "show-backup", "pg1", id)
	return b
}
