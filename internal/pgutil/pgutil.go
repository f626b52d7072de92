// Package pgutil holds walkeeper's small conveniences for talking SQL to a managed
// server: connecting with a conninfo and reading what walkeeper needs to know about it.
package pgutil

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walkeeper/walkeeper/internal/record"
)

// Connect opens a SQL connection; conninfo is libpq key=value or a URL. The error names
// no password: pgx never puts one in its messages.
func Connect(ctx context.Context, conninfo string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return nil, fmt.Errorf("conninfo: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "walkeeper"
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Identity asks a server for its system identifier, WAL segment size and version.
func Identity(ctx context.Context, conninfo string) (record.Identity, error) {
	var id record.Identity
	c, err := Connect(ctx, conninfo)
	if err != nil {
		return id, err
	}
	defer c.Close(ctx)
	var sysid, segsize, ver string
	err = c.QueryRow(ctx, `SELECT system_identifier::text,
		(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'),
		current_setting('server_version_num') FROM pg_control_system()`).Scan(&sysid, &segsize, &ver)
	if err != nil {
		return id, fmt.Errorf("read server identity: %w", err)
	}
	if id.SystemID, err = strconv.ParseUint(sysid, 10, 64); err != nil {
		return id, fmt.Errorf("system identifier %q: %w", sysid, err)
	}
	if id.SegSize, err = strconv.ParseUint(segsize, 10, 64); err != nil {
		return id, fmt.Errorf("wal_segment_size %q: %w", segsize, err)
	}
	if id.PGVersion, err = strconv.Atoi(ver); err != nil {
		return id, fmt.Errorf("server_version_num %q: %w", ver, err)
	}
	id.Source = "server"
	id.LearnedAt = time.Now().UTC()
	return id, nil
}

// ArchiverStats is pg_stat_archiver, the cause named when WAL does not arrive.
type ArchiverStats struct {
	ArchivedCount    int64      `json:"archived_count"`
	LastArchivedWAL  string     `json:"last_archived_wal,omitempty"`
	LastArchivedTime *time.Time `json:"last_archived_time,omitempty"`
	FailedCount      int64      `json:"failed_count"`
	LastFailedWAL    string     `json:"last_failed_wal,omitempty"`
	LastFailedTime   *time.Time `json:"last_failed_time,omitempty"`
}

// Archiver reads pg_stat_archiver.
func Archiver(ctx context.Context, c *pgx.Conn) (ArchiverStats, error) {
	var s ArchiverStats
	var lastArch, lastFail *string
	err := c.QueryRow(ctx, `SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time FROM pg_stat_archiver`).
		Scan(&s.ArchivedCount, &lastArch, &s.LastArchivedTime, &s.FailedCount, &lastFail, &s.LastFailedTime)
	if lastArch != nil {
		s.LastArchivedWAL = *lastArch
	}
	if lastFail != nil {
		s.LastFailedWAL = *lastFail
	}
	return s, err
}

// Cause describes why WAL may not be arriving, from pg_stat_archiver; "" when nothing
// failed after the last success.
func (s ArchiverStats) Cause() string {
	if s.LastFailedWAL == "" || s.LastFailedTime == nil {
		return ""
	}
	if s.LastArchivedTime != nil && s.LastArchivedTime.After(*s.LastFailedTime) {
		return ""
	}
	return fmt.Sprintf("archive_command failed %d times, last for %s at %s (see the PostgreSQL log)",
		s.FailedCount, s.LastFailedWAL, s.LastFailedTime.UTC().Format(time.RFC3339))
}

// Answers reports whether a PostgreSQL server answers at conninfo within timeout, and
// where (host:port, no password). A server that answers with an error (a refused
// login, "the database system is starting up") answers all the same: it is there.
func Answers(ctx context.Context, conninfo string, timeout time.Duration) (where string, up bool) {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return "", false
	}
	where = fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	cfg.ConnectTimeout = timeout
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := pgconn.ConnectConfig(cctx, cfg)
	if err == nil {
		_ = c.Close(ctx)
		return where, true
	}
	var pgErr *pgconn.PgError
	return where, errors.As(err, &pgErr)
}
