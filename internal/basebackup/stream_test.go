package basebackup

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/walkeeper/walkeeper/internal/compress"
	"github.com/walkeeper/walkeeper/internal/storage"
)

// fakeServer accepts one connection, reports serverVersion at startup and answers the
// first query with script (after checking the query's prefix). It returns the address and
// a channel with the query it got.
func fakeServer(t *testing.T, serverVersion string, script func(b *pgproto3.Backend)) (string, <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		b := pgproto3.NewBackend(c, c)
		if _, err := b.ReceiveStartupMessage(); err != nil {
			return
		}
		b.Send(&pgproto3.AuthenticationOk{})
		b.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: serverVersion})
		b.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
		b.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
		if b.Flush() != nil {
			return
		}
		m, err := b.Receive()
		if err != nil {
			return
		}
		if q, ok := m.(*pgproto3.Query); ok {
			got <- q.String
		}
		script(b)
		_ = b.Flush()
		// Hold the connection until the client closes it.
		_, _ = b.Receive()
	}()
	return l.Addr().String(), got
}

func connectFake(t *testing.T, addr string) *pgconn.PgConn {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, "host="+host+" port="+port+" user=u sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func fakeOptions(t *testing.T) streamOptions {
	return streamOptions{store: storage.NewLocal(t.TempDir()), server: "pg1", id: "b1", label: "l",
		codec: compress.None, jobs: 1, writers: 1}
}

func sendPosition(b *pgproto3.Backend) {
	b.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("recptr")}, {Name: []byte("tli")}}})
	b.Send(&pgproto3.DataRow{Values: [][]byte{[]byte("0/2000028"), []byte("1")}})
	b.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT")})
	b.Send(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("spcoid")}, {Name: []byte("spclocation")}, {Name: []byte("size")}}})
	b.Send(&pgproto3.DataRow{Values: [][]byte{nil, nil, []byte("1")}})
	b.Send(&pgproto3.CommandComplete{CommandTag: []byte("SELECT")})
}

// TestStreamUnknownMessageType: a CopyData of a type the reader does not know fails the
// backup (naming the type), never dropped while the backup goes on.
func TestStreamUnknownMessageType(t *testing.T) {
	addr, got := fakeServer(t, "16.4", func(b *pgproto3.Backend) {
		sendPosition(b)
		b.Send(&pgproto3.CopyOutResponse{})
		b.Send(&pgproto3.CopyData{Data: append([]byte("nbase.tar\x00"), 0)})
		b.Send(&pgproto3.CopyData{Data: []byte("xsomething new")})
	})
	_, err := runBaseBackup(context.Background(), connectFake(t, addr), fakeOptions(t))
	if err == nil || !strings.Contains(err.Error(), "unknown type 'x'") {
		t.Fatalf("runBaseBackup with an unknown CopyData type: %v", err)
	}
	if q := <-got; !strings.HasPrefix(q, "BASE_BACKUP (LABEL 'l', PROGRESS,") {
		t.Fatalf("a PostgreSQL 16 server got %q", q)
	}
}

// TestStreamRefusesUnsupportedMajor: a server outside 13..18 gets no BASE_BACKUP, and the
// error names the supported range.
func TestStreamRefusesUnsupportedMajor(t *testing.T) {
	for _, v := range []string{"12.22", "19beta1"} {
		addr, got := fakeServer(t, v, func(b *pgproto3.Backend) {})
		_, err := runBaseBackup(context.Background(), connectFake(t, addr), fakeOptions(t))
		if err == nil || !strings.Contains(err.Error(), "supports PostgreSQL 13 to 18") {
			t.Fatalf("server_version %s: %v", v, err)
		}
		select {
		case q := <-got:
			t.Fatalf("server_version %s was sent %q", v, q)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestStreamOldProtocolExtraCopy: on 13/14, a COPY stream beyond the tablespaces and the
// manifest is an error, not data appended somewhere.
func TestStreamOldProtocolExtraCopy(t *testing.T) {
	addr, got := fakeServer(t, "13.23", func(b *pgproto3.Backend) {
		sendPosition(b)
		for range 3 { // base.tar, the manifest, and one too many
			b.Send(&pgproto3.CopyOutResponse{})
			b.Send(&pgproto3.CopyDone{})
		}
	})
	_, err := runBaseBackup(context.Background(), connectFake(t, addr), fakeOptions(t))
	if err == nil || !strings.Contains(err.Error(), "COPY stream 3 after 1 tablespaces and the manifest") {
		t.Fatalf("a third COPY stream: %v", err)
	}
	if q := <-got; q != "BASE_BACKUP LABEL 'l' PROGRESS FAST NOWAIT MANIFEST 'yes' MANIFEST_CHECKSUMS 'CRC32C'" {
		t.Fatalf("a PostgreSQL 13 server got %q", q)
	}
}
