package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"time"
)

// ---------------------------------------------------------------------------------------------
// Payloads

// Rng is xorshift64 seeded through splitmix64 (distinct streams for nearby seeds).
type Rng uint64

func newRng(seed uint64) Rng {
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	if z == 0 {
		z = 1
	}
	return Rng(z)
}

func (r *Rng) next() uint64 {
	x := uint64(*r)
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	*r = Rng(x)
	return x
}

// fill overwrites b with the generator's next bytes.
func (r *Rng) fill(b []byte) {
	for len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, r.next())
		b = b[8:]
	}
	if len(b) > 0 {
		v := r.next()
		for i := range b {
			b[i] = byte(v)
			v >>= 8
		}
	}
}

// Pattern is a connection's bulk byte stream: an endless pseudo-random sequence with an odd period a
// little above minPeriod, different for every seed. It is generated once (xorshift into a reused
// buffer, stored twice in a row) so that sending is a slice and checking is a memcmp.
type Pattern struct {
	period  int
	doubled []byte
}

func newPattern(seed uint64, minPeriod int) *Pattern {
	period := minPeriod + 2*int(seed%997) + 1
	doubled := make([]byte, 2*period)
	rng := newRng(seed*2654435761 + 1)
	rng.fill(doubled[:period])
	copy(doubled[period:], doubled[:period])
	return &Pattern{period: period, doubled: doubled}
}

// slice returns the bytes at [offset, offset+n); n must not exceed the period.
func (p *Pattern) slice(offset int64, n int) []byte {
	start := int(offset % int64(p.period))
	return p.doubled[start : start+n]
}

// mismatch returns -1 when chunk equals the stream at offset, else the index of the first difference.
func (p *Pattern) mismatch(chunk []byte, offset int64) int {
	done := 0
	for done < len(chunk) {
		n := len(chunk) - done
		if n > p.period {
			n = p.period
		}
		want := p.slice(offset+int64(done), n)
		if !bytes.Equal(want, chunk[done:done+n]) {
			return done + firstDifference(want, chunk[done:done+n])
		}
		done += n
	}
	return -1
}

func firstDifference(a, b []byte) int {
	n := len(a)
	if len(b) < n {
		n = len(b)
	}
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// makeRequest fills buf with fresh random bytes and, when it is large enough, the client id and the
// sequence number (so that bytes crossing between connections or requests are detected).
func makeRequest(buf []byte, rng *Rng, client, seq uint32) {
	rng.fill(buf)
	if len(buf) >= 8 {
		binary.LittleEndian.PutUint32(buf[0:], client)
		binary.LittleEndian.PutUint32(buf[4:], seq)
	}
}

// ---------------------------------------------------------------------------------------------
// Latency histogram

// Hist is a log-linear latency histogram in nanoseconds: exact below 256 ns, then 128 buckets per
// power of two (relative error below 0.4 %). One per goroutine, merged at the end.
type Hist struct {
	counts []uint64
	n      uint64
	sum    float64
	max    int64
}

const histSub = 128

func newHist() *Hist { return &Hist{counts: make([]uint64, 256+64*histSub)} }

func histIndex(v int64) int {
	if v < 256 {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - 8
	return 256 + (shift-1)*histSub + int(uint64(v)>>uint(shift)) - histSub
}

// histValue: the middle of bucket i.
func histValue(i int) float64 {
	if i < 256 {
		return float64(i)
	}
	shift := uint((i-256)/histSub + 1)
	m := uint64((i-256)%histSub + histSub)
	lo := m << shift
	hi := (m+1)<<shift - 1
	return (float64(lo) + float64(hi)) / 2
}

func (h *Hist) add(d time.Duration) {
	v := int64(d)
	h.counts[histIndex(v)]++
	h.n++
	h.sum += float64(v)
	if v > h.max {
		h.max = v
	}
}

func (h *Hist) merge(o *Hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	if o.max > h.max {
		h.max = o.max
	}
}

// Latency is the JavaScript generator's summary, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

func round3(ms float64) float64 { return float64(int64(ms*1000+0.5)) / 1000 }

func (h *Hist) summary() Latency {
	if h.n == 0 {
		return Latency{}
	}
	quantile := func(q float64) float64 {
		rank := uint64(q*float64(h.n) + 0.999999999)
		if rank < 1 {
			rank = 1
		}
		var seen uint64
		for i, c := range h.counts {
			seen += c
			if seen >= rank {
				v := histValue(i)
				if v > float64(h.max) {
					v = float64(h.max)
				}
				return v
			}
		}
		return float64(h.max)
	}
	ms := func(ns float64) float64 { return round3(ns / 1e6) }
	return Latency{
		Count: int64(h.n),
		Mean:  ms(h.sum / float64(h.n)),
		P50:   ms(quantile(0.5)),
		P99:   ms(quantile(0.99)),
		P999:  ms(quantile(0.999)),
		Max:   ms(float64(h.max)),
	}
}

// ---------------------------------------------------------------------------------------------
// Connections

// stallTimeout: longest wait for any single read or write before the connection counts as stalled.
const stallTimeout = 10 * time.Second

func dial(target string) (*net.TCPConn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", target)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn) // Go sets TCP_NODELAY on every TCP connection it makes
	progress.Connected.Add(1)
	progress.Opened.Add(1)
	return tc, nil
}

func closeConn(c *net.TCPConn) {
	if c != nil {
		progress.Connected.Add(-1)
		_ = c.Close()
	}
}

// describe shortens Go's network errors for the error samples.
func describe(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "stalled: no progress for " + stallTimeout.String()
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "peer closed (FIN) early"
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "timed out"
	}
	return err.Error()
}

// exchange writes req and reads back exactly len(req) bytes into resp, checking them. The caller
// keeps a deadline on c (see keepDeadline).
func exchange(c *net.TCPConn, req, resp []byte) error {
	if _, err := c.Write(req); err != nil {
		return fmt.Errorf("write: %s", describe(err))
	}
	if n, err := io.ReadFull(c, resp); err != nil {
		return fmt.Errorf("after %d of %d echo bytes: %s", n, len(req), describe(err))
	}
	if !bytes.Equal(req, resp) {
		return fmt.Errorf("echo differs at byte %d of %d", firstDifference(req, resp), len(req))
	}
	return nil
}

// keepDeadline pushes c's read and write deadline stallTimeout past now when the last push is more
// than a second old (a deadline per request would cost two timer updates each).
func keepDeadline(c *net.TCPConn, now time.Time, last *time.Time) {
	if now.Sub(*last) > time.Second {
		_ = c.SetDeadline(now.Add(stallTimeout))
		*last = now
	}
}

// closeClean sends FIN, expects the peer's FIN with no further byte (within 5 s), then closes.
func closeClean(c *net.TCPConn) error {
	defer closeConn(c)
	if err := c.CloseWrite(); err != nil {
		return fmt.Errorf("close: %s", describe(err))
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var one [64]byte
	n, err := c.Read(one[:])
	if n > 0 {
		return fmt.Errorf("close: %d unexpected bytes after the last echo", n)
	}
	if errors.Is(err, io.EOF) {
		return nil
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("close: no FIN from the peer within 5 s of ours")
	}
	return fmt.Errorf("close: %s", describe(err))
}
