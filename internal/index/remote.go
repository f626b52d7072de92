package index

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/walkeeper/walkeeper/internal/record"
)

// The daemon serves the Index interface over its unix socket as JSON calls: POST
// /v1/index/<Method> with a request document. ScanWAL answers with one JSON record a line
// so a large range never sits in memory on either side.

type request struct {
	Server string          `json:"server"`
	Name   string          `json:"name,omitempty"`
	ID     string          `json:"id,omitempty"`
	Names  []string        `json:"names,omitempty"`
	Range  WALRange        `json:"range"`
	WAL    *record.WALFile `json:"wal,omitempty"`
	Backup *record.Backup  `json:"backup,omitempty"`
}

type errorReply struct {
	Error    string `json:"error"`
	NotFound bool   `json:"not_found,omitempty"`
}

// Handler serves idx at /v1/index/.
func Handler(idx Index) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := strings.TrimPrefix(r.URL.Path, "/v1/index/")
		var req request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeErr(w, fmt.Errorf("bad request: %w", err))
			return
		}
		ctx := r.Context()
		var (
			out any
			err error
		)
		switch method {
		case "PutWAL":
			if req.WAL == nil {
				err = errors.New("PutWAL: no record")
				break
			}
			err = idx.PutWAL(ctx, req.Server, *req.WAL)
		case "GetWAL":
			out, err = idx.GetWAL(ctx, req.Server, req.Name)
		case "ScanWAL":
			w.Header().Set("Content-Type", "application/x-ndjson")
			enc := json.NewEncoder(w)
			err = idx.ScanWAL(ctx, req.Server, req.Range, func(f record.WALFile) error { return enc.Encode(f) })
			if err != nil {
				// Headers are gone: signal the failure in-band as a final error line.
				_ = enc.Encode(map[string]string{"error": err.Error()})
			}
			return
		case "DeleteWAL":
			err = idx.DeleteWAL(ctx, req.Server, req.Names)
		case "WALStats":
			out, err = idx.WALStats(ctx, req.Server)
		case "WALTimelines":
			out, err = idx.WALTimelines(ctx, req.Server)
		case "PutBackup":
			if req.Backup == nil {
				err = errors.New("PutBackup: no record")
				break
			}
			err = idx.PutBackup(ctx, req.Server, *req.Backup)
		case "GetBackup":
			out, err = idx.GetBackup(ctx, req.Server, req.ID)
		case "ListBackups":
			out, err = idx.ListBackups(ctx, req.Server)
		case "DeleteBackup":
			err = idx.DeleteBackup(ctx, req.Server, req.ID)
		case "DropServer":
			err = idx.DropServer(ctx, req.Server)
		default:
			http.Error(w, "unknown method "+method, http.StatusNotFound)
			return
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
}

func writeErr(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusConflict)
	_ = json.NewEncoder(w).Encode(errorReply{Error: err.Error(), NotFound: errors.Is(err, ErrNotFound)})
}

// Remote is an Index reached through the daemon's socket.
type Remote struct {
	client *http.Client
}

// NewRemote returns an Index that calls the daemon through client (whose transport dials
// the unix socket).
func NewRemote(client *http.Client) *Remote { return &Remote{client: client} }

func (x *Remote) call(ctx context.Context, method string, req request, out any) error {
	resp, err := x.post(ctx, method, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (x *Remote) post(ctx context.Context, method string, req request) (*http.Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://walkeeper/v1/index/"+method, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := x.client.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("daemon %s: %w", method, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var e errorReply
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Error != "" {
			if e.NotFound {
				return nil, fmt.Errorf("%s: %w", strings.TrimSuffix(e.Error, ": "+ErrNotFound.Error()), ErrNotFound)
			}
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("daemon %s: HTTP %s", method, resp.Status)
	}
	return resp, nil
}

// PutWAL implements Index.
func (x *Remote) PutWAL(ctx context.Context, server string, f record.WALFile) error {
	return x.call(ctx, "PutWAL", request{Server: server, WAL: &f}, nil)
}

// GetWAL implements Index.
func (x *Remote) GetWAL(ctx context.Context, server, name string) (record.WALFile, error) {
	var f record.WALFile
	err := x.call(ctx, "GetWAL", request{Server: server, Name: name}, &f)
	return f, err
}

// ScanWAL implements Index.
func (x *Remote) ScanWAL(ctx context.Context, server string, r WALRange, fn func(record.WALFile) error) error {
	resp, err := x.post(ctx, "ScanWAL", request{Server: server, Range: r})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if bytes.HasPrefix(line, []byte(`{"error":`)) {
			var e errorReply
			if json.Unmarshal(line, &e) == nil {
				return fmt.Errorf("daemon ScanWAL: %s", e.Error)
			}
		}
		var f record.WALFile
		if err := json.Unmarshal(line, &f); err != nil {
			return fmt.Errorf("daemon ScanWAL: %w", err)
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return sc.Err()
}

// DeleteWAL implements Index.
func (x *Remote) DeleteWAL(ctx context.Context, server string, names []string) error {
	return x.call(ctx, "DeleteWAL", request{Server: server, Names: names}, nil)
}

// WALStats implements Index.
func (x *Remote) WALStats(ctx context.Context, server string) (Stats, error) {
	var s Stats
	err := x.call(ctx, "WALStats", request{Server: server}, &s)
	return s, err
}

// WALTimelines implements Index.
func (x *Remote) WALTimelines(ctx context.Context, server string) ([]TimelineSpan, error) {
	var out []TimelineSpan
	err := x.call(ctx, "WALTimelines", request{Server: server}, &out)
	return out, err
}

// PutBackup implements Index.
func (x *Remote) PutBackup(ctx context.Context, server string, b record.Backup) error {
	return x.call(ctx, "PutBackup", request{Server: server, Backup: &b}, nil)
}

// GetBackup implements Index.
func (x *Remote) GetBackup(ctx context.Context, server, id string) (record.Backup, error) {
	var b record.Backup
	err := x.call(ctx, "GetBackup", request{Server: server, ID: id}, &b)
	return b, err
}

// ListBackups implements Index.
func (x *Remote) ListBackups(ctx context.Context, server string) ([]record.Backup, error) {
	var out []record.Backup
	err := x.call(ctx, "ListBackups", request{Server: server}, &out)
	return out, err
}

// DeleteBackup implements Index.
func (x *Remote) DeleteBackup(ctx context.Context, server, id string) error {
	return x.call(ctx, "DeleteBackup", request{Server: server, ID: id}, nil)
}

// DropServer implements Index.
func (x *Remote) DropServer(ctx context.Context, server string) error {
	return x.call(ctx, "DropServer", request{Server: server}, nil)
}

// Close implements Index; the daemon keeps the database open.
func (x *Remote) Close() error { return nil }
