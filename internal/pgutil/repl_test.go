package pgutil

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A replication connection that fails names the server without its password
// (invariant 10).
func TestReplConnectErrorRedacts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln.Close() // a closed port: the connection is refused
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, conninfo := range []string{
		"host=127.0.0.1 port=" + strconv.Itoa(addr.Port) + " user=u password=s3cr3t-pw",
		"postgres://u:s3cr3t-pw@127.0.0.1:" + strconv.Itoa(addr.Port) + "/postgres",
	} {
		_, err := ReplConnect(ctx, conninfo, ReplOptions{ApplicationName: "walkeeper"})
		if err == nil {
			t.Fatalf("%s: connected to a closed port", conninfo)
		}
		if strings.Contains(err.Error(), "s3cr3t-pw") || !strings.Contains(err.Error(), "replication connection (") {
			t.Fatalf("error %q", err)
		}
	}
}
