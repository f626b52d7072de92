package bufpool

import "testing"

func TestPool(t *testing.T) {
	p := New(2, 1<<20)
	a := p.Get(100)
	if len(a) != 0 || cap(a) < 100 {
		t.Fatalf("Get(100): len %d cap %d", len(a), cap(a))
	}
	a = append(a, "data"...)
	p.Put(a)
	b := p.Get(50)
	if len(b) != 0 || &b[:1][0] != &a[:1][0] {
		t.Fatal("a kept buffer large enough was not reused, or not emptied")
	}
	p.Put(b)
	if c := p.Get(200); cap(c) < 200 {
		t.Fatalf("Get(200) from a pool holding a 100-byte buffer: cap %d", cap(c))
	}
	p.Put(make([]byte, 0, 2<<20)) // over maxCap: dropped
	p.Put(make([]byte, 0, 10))
	p.Put(make([]byte, 0, 10))
	p.Put(make([]byte, 0, 10)) // pool full: dropped, no block
	if len(p.ch) != 2 {
		t.Fatalf("pool holds %d buffers, want 2", len(p.ch))
	}
}
