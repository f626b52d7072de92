package s3store

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/walkeeper/walkeeper/internal/s3test"
	"github.com/walkeeper/walkeeper/internal/storage"
	"github.com/walkeeper/walkeeper/internal/storage/storetest"
)

// repeatReader yields left bytes cycling through buf, so that a 1 GiB stream costs no
// generation time and no 1 GiB of memory.
type repeatReader struct {
	buf  []byte
	off  int
	left int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(int64(len(p)), r.left)], r.buf[r.off:])
	r.off = (r.off + n) % len(r.buf)
	r.left -= int64(n)
	return n, nil
}

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkThroughput (scripts/bench-s3.sh) measures Put and Get throughput of 16 MiB
// objects and of one large object on the S3 store (versitygw on this disk) against
// storage.Local on the same disk, in the same run, and prints the ratios and the requests
// per operation. BENCH_S3_OBJECTS (32), BENCH_S3_LARGE_MIB (1024), BENCH_S3_PART_MIB (32).
func BenchmarkThroughput(b *testing.B) {
	objects := envInt("BENCH_S3_OBJECTS", 32)
	largeSize := envInt("BENCH_S3_LARGE_MIB", 1024) << 20
	partSize := envInt("BENCH_S3_PART_MIB", DefaultPartSize>>20) << 20
	srv := s3test.Start(b)
	s3, err := New(bg, Options{Endpoint: srv.Endpoint, Region: "us-east-1", Bucket: srv.Bucket, Prefix: "bench", PathStyle: true,
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, PartSize: partSize})
	if err != nil {
		b.Fatal(err)
	}
	local := storage.NewLocal(b.TempDir())
	const objSize = 16 << 20
	data := storetest.Random(objSize, 7)

	type result struct {
		name         string
		bytes        int64
		local, s3    time.Duration
		requests     storage.RequestCounts
		perOperation int64
	}
	var results []result
	// measure runs f on local then on s3 and records both durations.
	measure := func(name string, n int64, ops int64, f func(st storage.Store) error) {
		var r result
		r.name, r.bytes, r.perOperation = name, n, ops
		t0 := time.Now()
		if err := f(local); err != nil {
			b.Fatalf("%s on local: %v", name, err)
		}
		r.local = time.Since(t0)
		before := s3.Requests()
		t0 = time.Now()
		if err := f(s3); err != nil {
			b.Fatalf("%s on s3: %v", name, err)
		}
		r.s3 = time.Since(t0)
		r.requests = s3.Requests().Sub(before)
		results = append(results, r)
	}
	b.ResetTimer()
	measure(fmt.Sprintf("put %d x 16 MiB", objects), objects*objSize, objects, func(st storage.Store) error {
		for i := range objects {
			data[0] = byte(i) // distinct objects
			if _, err := st.Put(bg, fmt.Sprintf("wals/%04d", i), bytes.NewReader(data)); err != nil {
				return err
			}
		}
		return nil
	})
	measure(fmt.Sprintf("get %d x 16 MiB", objects), objects*objSize, objects, func(st storage.Store) error {
		for i := range objects {
			r, err := st.Get(bg, fmt.Sprintf("wals/%04d", i))
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, r)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	measure(fmt.Sprintf("put 1 x %d MiB", largeSize>>20), largeSize, 1, func(st storage.Store) error {
		_, err := st.Put(bg, "base/large", &repeatReader{buf: data, left: largeSize})
		return err
	})
	measure(fmt.Sprintf("get 1 x %d MiB", largeSize>>20), largeSize, 1, func(st storage.Store) error {
		r, err := st.Get(bg, "base/large")
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, r)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err == nil && n != largeSize {
			err = fmt.Errorf("read %d bytes, want %d", n, largeSize)
		}
		return err
	})
	b.StopTimer()
	fmt.Printf("s3 store (versitygw posix, loopback, part size %d MiB) vs storage.Local on the same disk, same run\n", partSize>>20)
	fmt.Printf("%-20s %12s %12s %10s   %s\n", "operation", "local MiB/s", "s3 MiB/s", "s3/local", "s3 requests per object")
	for _, r := range results {
		mib := float64(r.bytes) / (1 << 20)
		l, s := mib/r.local.Seconds(), mib/r.s3.Seconds()
		q := r.requests
		fmt.Printf("%-20s %12.0f %12.0f %9.2fx   PUT %.1f GET %.1f LIST %.1f HEAD %.1f DELETE %.1f\n", r.name, l, s, s/l,
			float64(q.Put)/float64(r.perOperation), float64(q.Get)/float64(r.perOperation), float64(q.List)/float64(r.perOperation),
			float64(q.Head)/float64(r.perOperation), float64(q.Delete)/float64(r.perOperation))
	}
}
