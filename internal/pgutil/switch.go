package pgutil

import (
	"context"
	"os"

	"github.com/jackc/pgx/v5"
)

// SwitchWAL forces a WAL switch (pg_switch_wal) and returns where it happened and the
// segment it closed: pg_walfile_name maps a segment boundary to the segment that ends
// there.
func SwitchWAL(ctx context.Context, c *pgx.Conn) (lsn, walName string, err error) {
	err = c.QueryRow(ctx, `WITH s AS (SELECT pg_switch_wal() AS l) SELECT l::text, pg_walfile_name(l) FROM s`).Scan(&lsn, &walName)
	return lsn, walName, err
}

// ConnUser is the user name a conninfo connects as; "postgres" when it names none (or,
// for root, names root, whom no cluster knows).
func ConnUser(conninfo string) string {
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil || cfg.User == "" {
		return "postgres"
	}
	if os.Geteuid() == 0 && cfg.User == "root" {
		return "postgres"
	}
	return cfg.User
}
