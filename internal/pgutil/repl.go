package pgutil

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walkeeper/walkeeper/internal/config"
)

// ReplOptions tunes a replication connection.
type ReplOptions struct {
	// ApplicationName is the name the server sees. The receiver sets it over the
	// conninfo's (synchronous_standby_names matches it); a backup only fills it in.
	ApplicationName string
	// KeepConninfoName leaves an application_name the conninfo gives.
	KeepConninfoName bool
	// ReadBuffer, if set, is the size of the protocol's read buffer (pgproto3 reads
	// 8 KiB at a time; a base backup's stream is hundreds of MB of CopyData).
	ReadBuffer int
}

// ReplConnect opens a physical replication connection (replication=yes unless the
// conninfo says otherwise), with a 10 s connect timeout unless the conninfo sets one.
// The error names the conninfo with its password redacted.
func ReplConnect(ctx context.Context, conninfo string, o ReplOptions) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return nil, fmt.Errorf("streaming conninfo: %w", err)
	}
	if cfg.RuntimeParams["replication"] == "" {
		cfg.RuntimeParams["replication"] = "yes"
	}
	if o.ApplicationName != "" && !(o.KeepConninfoName && cfg.RuntimeParams["application_name"] != "") {
		cfg.RuntimeParams["application_name"] = o.ApplicationName
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if o.ReadBuffer > 0 {
		cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
			return pgproto3.NewFrontend(bufio.NewReaderSize(r, o.ReadBuffer), w)
		}
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replication connection (%s): %w", config.RedactConninfo(conninfo), err)
	}
	return c, nil
}
