package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sys/unix"

	"github.com/walkeeper/walkeeper/internal/segments"
)

type walGoneError struct {
	from segments.LSN
	err  error
}

func (e *walGoneError) Error() string { return e.err.Error() }

func (e *walGoneError) Unwrap() error { return e.err }

// pending reports whether more replication data is already waiting, in pgconn's
// buffer or in the socket: a burst is not over, so the fsync can wait for it.
func pending(conn *pgconn.PgConn) bool {
	if conn.Frontend().ReadBufferLen() > 0 {
		return true
	}
	c := conn.Conn()
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		// TLS: encrypted bytes waiting in the socket mean a message is on its way.
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	_ = raw.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	return n > 0
}

func sendStatus(conn *pgconn.PgConn, write, flush segments.LSN, reply bool) error {
	data := make([]byte, 0, 34)
	data = append(data, pglogrepl.StandbyStatusUpdateByteID)
	data = appendU64(data, uint64(write))
	data = appendU64(data, uint64(flush))
	data = appendU64(data, 0) // apply: walkeeper applies nothing
	const pgEpochMicros = 946684800 * 1000000
	data = appendU64(data, uint64(time.Now().UnixMicro()-pgEpochMicros))
	if reply {
		data = append(data, 1)
	} else {
		data = append(data, 0)
	}
	cd := &pgproto3.CopyData{Data: data}
	buf, err := cd.Encode(nil)
	if err != nil {
		return err
	}
	return conn.Frontend().SendUnbufferedEncodedCopyData(buf)
}

func appendU64(b []byte, v uint64) []byte {
	return append(b, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// showSegSize asks the server for wal_segment_size ("16MB").
func showSegSize(ctx context.Context, conn *pgconn.PgConn) (uint64, error) {
	res, err := conn.Exec(ctx, "SHOW wal_segment_size").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("SHOW wal_segment_size: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return 0, errors.New("SHOW wal_segment_size: unexpected answer")
	}
	v, err := parseSize(string(res[0].Rows[0][0]))
	if err != nil || !segments.ValidSegSize(v) {
		return 0, fmt.Errorf("wal_segment_size %q: not a valid segment size", res[0].Rows[0][0])
	}
	return v, nil
}

func parseSize(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]uint64{"": 1, "B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[strings.TrimSpace(s[i:])]
	if mult == 0 {
		return 0, fmt.Errorf("unknown unit in %q", s)
	}
	return n * mult, nil
}
