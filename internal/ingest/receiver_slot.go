package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/walkeeper/walkeeper/internal/pgutil"
	"github.com/walkeeper/walkeeper/internal/segments"
)

var slotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// ValidSlotName reports whether PostgreSQL accepts name as a replication slot name;
// the receiver interpolates it into replication commands, so nothing else may pass.
func ValidSlotName(name string) error {
	if !slotNameRE.MatchString(name) {
		return fmt.Errorf("slot name %q: only lower-case letters, digits and underscores, at most 63", name)
	}
	return nil
}

// slotInfo is READ_REPLICATION_SLOT's answer (restartTLI 0: unknown, the server's).
type slotInfo struct {
	exists     bool
	restartLSN segments.LSN
	restartTLI uint32
}

// readSlot reads the slot through the replication connection conn (READ_REPLICATION_SLOT,
// PostgreSQL 15 and later) or, on 13 and 14, which lack that command and run no SQL on a
// physical replication connection, from pg_replication_slots over a normal connection
// made from conninfo (streaming_conninfo without replication).
func readSlot(ctx context.Context, conn *pgconn.PgConn, conninfo, name string) (slotInfo, error) {
	major, err := pgutil.ServerMajor(conn)
	if err != nil {
		return slotInfo{}, err
	}
	if err := pgutil.CheckMajor(major); err != nil {
		return slotInfo{}, err
	}
	if major < 15 {
		return readSlotSQL(ctx, conninfo, name, major)
	}
	return readSlotCommand(ctx, conn, name)
}

func readSlotCommand(ctx context.Context, conn *pgconn.PgConn, name string) (slotInfo, error) {
	var si slotInfo
	res, err := conn.Exec(ctx, "READ_REPLICATION_SLOT "+name).ReadAll()
	if err != nil {
		return si, fmt.Errorf("READ_REPLICATION_SLOT %s: %w", name, err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 3 {
		return si, fmt.Errorf("READ_REPLICATION_SLOT %s: unexpected answer", name)
	}
	row := res[0].Rows[0]
	if row[0] == nil {
		return si, nil
	}
	si.exists = true
	if string(row[0]) != "physical" {
		return si, fmt.Errorf("replication slot %s is a %s slot, not a physical one", name, row[0])
	}
	if row[1] != nil {
		l, err := segments.ParseLSN(string(row[1]))
		if err != nil {
			return si, fmt.Errorf("slot %s restart_lsn: %w", name, err)
		}
		si.restartLSN = l
	}
	if row[2] != nil {
		t, err := strconv.ParseUint(string(row[2]), 10, 32)
		if err == nil {
			si.restartTLI = uint32(t)
		}
	}
	return si, nil
}

// readSlotSQL is readSlot for PostgreSQL 13 and 14: pg_replication_slots, which has no
// restart timeline (the caller takes the server's).
func readSlotSQL(ctx context.Context, conninfo, name string, major int) (slotInfo, error) {
	var si slotInfo
	pc, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return si, fmt.Errorf("streaming_conninfo: %w", err)
	}
	delete(pc.RuntimeParams, "replication")
	if pc.Database == "" {
		pc.Database = "postgres"
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = 10 * time.Second
	}
	what := fmt.Sprintf("PostgreSQL %d has no READ_REPLICATION_SLOT: reading slot %s from pg_replication_slots over a normal connection to database %s", major, name, pc.Database)
	c, err := pgconn.ConnectConfig(ctx, pc)
	if err != nil {
		return si, fmt.Errorf("%s: %w", what, err)
	}
	defer c.Close(context.Background())
	res := c.ExecParams(ctx, "SELECT slot_type, restart_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
		[][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil {
		return si, fmt.Errorf("%s: %w", what, res.Err)
	}
	if len(res.Rows) == 0 {
		return si, nil
	}
	row := res.Rows[0]
	si.exists = true
	if string(row[0]) != "physical" {
		return si, fmt.Errorf("replication slot %s is a %s slot, not a physical one", name, row[0])
	}
	if row[1] != nil {
		l, err := segments.ParseLSN(string(row[1]))
		if err != nil {
			return si, fmt.Errorf("slot %s restart_lsn: %w", name, err)
		}
		si.restartLSN = l
	}
	return si, nil
}

func ensureSlot(ctx context.Context, conn *pgconn.PgConn, conninfo, name string, create bool, log *slog.Logger) (slotInfo, error) {
	si, err := readSlot(ctx, conn, conninfo, name)
	if err != nil || si.exists {
		return si, err
	}
	if !create {
		return si, fmt.Errorf("replication slot %s does not exist (create_slot = manual: run `walkeeper receive-wal --create-slot` or set create_slot = auto)", name)
	}
	if _, err := pglogrepl.CreateReplicationSlot(ctx, conn, name, "", pglogrepl.CreateReplicationSlotOptions{
		Mode: pglogrepl.PhysicalReplication, SnapshotAction: "RESERVE_WAL"}); err != nil {
		return si, fmt.Errorf("create replication slot %s: %w", name, err)
	}
	log.Info("replication slot created")
	return readSlot(ctx, conn, conninfo, name)
}

// CreateSlot creates the physical replication slot (with RESERVE_WAL) that the receiver
// streams through; an existing physical slot of that name is not an error.
func CreateSlot(ctx context.Context, conninfo, name string) (created bool, err error) {
	return withSlot(ctx, conninfo, name, func(conn *pgconn.PgConn, si slotInfo) (bool, error) {
		if si.exists {
			return false, nil
		}
		if _, err := ensureSlot(ctx, conn, conninfo, name, true, slog.New(slog.DiscardHandler)); err != nil {
			return false, err
		}
		return true, nil
	})
}

// DropSlot drops the receiver's replication slot, so the server stops keeping WAL for
// it; a missing slot is not an error.
func DropSlot(ctx context.Context, conninfo, name string) (dropped bool, err error) {
	return withSlot(ctx, conninfo, name, func(conn *pgconn.PgConn, si slotInfo) (bool, error) {
		if !si.exists {
			return false, nil
		}
		if err := pglogrepl.DropReplicationSlot(ctx, conn, name, pglogrepl.DropReplicationSlotOptions{}); err != nil {
			return false, fmt.Errorf("drop replication slot %s: %w", name, err)
		}
		return true, nil
	})
}

// withSlot checks the slot name, connects for replication and reads the slot, for fn.
func withSlot(ctx context.Context, conninfo, name string, fn func(*pgconn.PgConn, slotInfo) (bool, error)) (bool, error) {
	if err := ValidSlotName(name); err != nil {
		return false, err
	}
	conn, err := pgutil.ReplConnect(ctx, conninfo, pgutil.ReplOptions{ApplicationName: "walkeeper"})
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	si, err := readSlot(ctx, conn, conninfo, name)
	if err != nil {
		return false, err
	}
	return fn(conn, si)
}
