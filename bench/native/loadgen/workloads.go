package main

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	kib = 1024
	mib = 1024 * 1024
	// maxCount bounds every per-connection loop in count, whatever the clock says.
	maxCount = 1 << 30
)

// sinkMagic opens a sink-mode connection: bench/native/echo then reads to FIN and answers with the
// byte count (u64 LE) and CRC-32/IEEE (u32 LE) of everything after the magic, then FIN.
const sinkMagic = "PLTSINK1"

// Recorder collects latencies of one goroutine and flushes them into a shared histogram in batches.
type Recorder struct {
	mu   *sync.Mutex
	hist *Hist
	buf  []time.Duration
}

func newRecorder(mu *sync.Mutex, h *Hist) *Recorder {
	return &Recorder{mu: mu, hist: h, buf: make([]time.Duration, 0, 256)}
}

func (r *Recorder) add(d time.Duration) {
	r.buf = append(r.buf, d)
	if len(r.buf) == cap(r.buf) {
		r.flush()
	}
}

func (r *Recorder) flush() {
	r.mu.Lock()
	for _, d := range r.buf {
		r.hist.add(d)
	}
	r.mu.Unlock()
	r.buf = r.buf[:0]
}

// ---------------------------------------------------------------------------------------------
// Bulk

// BulkResult: mbps is bytes verified (counted once) per second, in 10^6 bytes.
type BulkResult struct {
	Base
	Streams        int     `json:"streams"`
	BytesPerStream int64   `json:"bytesPerStream"`
	Mode           string  `json:"mode"`
	Mbps           float64 `json:"mbps"`
	// Timed bulk: the bytes counted in the measuring window.
	WindowBytes int64 `json:"windowBytes,omitempty"`
}

// Window counts the bytes verified on arrival within a measuring window (timed bulk); nil: none.
type Window struct {
	from, until time.Time
	bytes       atomic.Int64
}

func (w *Window) count(n int) {
	if w == nil {
		return
	}
	now := time.Now()
	if !now.Before(w.from) && now.Before(w.until) {
		w.bytes.Add(int64(n))
	}
}

// bulkEcho: one stream sends up to limit bytes (or until stop), reads the echo concurrently and
// verifies every byte; returns the bytes echoed and verified.
func bulkEcho(target string, seed uint64, limit int64, stop func() bool, chunk int, errs *Errors, label string, window *Window) int64 {
	c, err := dial(target)
	if err != nil {
		errs.add("%s: connect: %s", label, describe(err))
		return 0
	}
	defer closeConn(c)
	pat := newPattern(seed, 256*kib)
	if chunk > pat.period {
		chunk = pat.period
	}
	var sent atomic.Int64
	var finSent atomic.Bool
	var failed atomic.Bool
	var once sync.Once
	fail := func(format string, args ...any) {
		once.Do(func() {
			failed.Store(true)
			errs.add(label+": "+format, args...)
			_ = c.Close()
		})
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		var off int64
		for count := 0; off < limit && count < maxCount && !failed.Load(); count++ {
			if stop != nil && stop() {
				break
			}
			n := int64(chunk)
			if limit-off < n {
				n = limit - off
			}
			b := pat.slice(off, int(n))
			sent.Store(off + n)
			_ = c.SetWriteDeadline(time.Now().Add(stallTimeout))
			if _, err := c.Write(b); err != nil {
				if !failed.Load() {
					fail("write after %d bytes: %s", off, describe(err))
				}
				return
			}
			off += n
		}
		if !failed.Load() {
			finSent.Store(true)
			if err := c.CloseWrite(); err != nil {
				fail("FIN after %d bytes: %s", off, describe(err))
			}
		}
	}()
	buf := make([]byte, 256*kib)
	var received int64
	for count := 0; count < maxCount; count++ {
		_ = c.SetReadDeadline(time.Now().Add(stallTimeout))
		n, err := c.Read(buf)
		if n > 0 {
			if received+int64(n) > sent.Load() {
				fail("echo ahead of what was sent (%d + %d > %d)", received, n, sent.Load())
				break
			}
			if at := pat.mismatch(buf[:n], received); at >= 0 {
				fail("echo differs at byte %d", received+int64(at))
				break
			}
			received += int64(n)
			progress.VerifiedBytes.Add(int64(n))
			window.count(n)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// Before our FIN the echo cannot end: fail at once (that also stops the writer).
				if finSent.Load() {
					<-writerDone
				}
				if !failed.Load() && (!finSent.Load() || received != sent.Load()) {
					fail("echo ended (FIN) after %d of %d bytes sent", received, sent.Load())
				}
			} else if !failed.Load() {
				fail("read after %d bytes echoed: %s", received, describe(err))
			}
			break
		}
	}
	<-writerDone
	return received
}

// bulkSink: one stream sends the magic then up to limit bytes (or until stop), FIN, and checks the
// backend's count and CRC-32 of them; returns the bytes verified.
func bulkSink(target string, seed uint64, limit int64, stop func() bool, chunk int, errs *Errors, label string) int64 {
	c, err := dial(target)
	if err != nil {
		errs.add("%s: connect: %s", label, describe(err))
		return 0
	}
	defer closeConn(c)
	const hint = " (sink mode needs the native backend, bench/native/echo)"
	pat := newPattern(seed, 256*kib)
	if chunk > pat.period {
		chunk = pat.period
	}
	var crc uint32
	var off int64
	magic := []byte(sinkMagic)
	for count := 0; off < limit && count < maxCount; count++ {
		if stop != nil && stop() {
			break
		}
		n := int64(chunk)
		if limit-off < n {
			n = limit - off
		}
		b := pat.slice(off, int(n))
		_ = c.SetWriteDeadline(time.Now().Add(stallTimeout))
		if magic != nil {
			bufs := net.Buffers{magic, b}
			_, err = bufs.WriteTo(c)
			magic = nil
		} else {
			_, err = c.Write(b)
		}
		if err != nil {
			errs.add("%s: write after %d bytes: %s%s", label, off, describe(err), hint)
			return 0
		}
		crc = crc32.Update(crc, crc32.IEEETable, b)
		off += n
	}
	if magic != nil {
		if _, err := c.Write(magic); err != nil {
			errs.add("%s: write: %s", label, describe(err))
			return 0
		}
	}
	if err := c.CloseWrite(); err != nil {
		errs.add("%s: FIN: %s", label, describe(err))
		return 0
	}
	var trailer [12]byte
	_ = c.SetReadDeadline(time.Now().Add(stallTimeout))
	if n, err := io.ReadFull(c, trailer[:]); err != nil {
		errs.add("%s: after %d bytes sent, %d of the 12-byte count+CRC reply: %s%s", label, off, n, describe(err), hint)
		return 0
	}
	count := int64(binary.LittleEndian.Uint64(trailer[0:]))
	got := binary.LittleEndian.Uint32(trailer[8:])
	if count != off || got != crc {
		errs.add("%s: backend counted %d bytes with CRC %08x; sent %d with CRC %08x%s", label, count, got, off, crc, hint)
		return 0
	}
	var rest [64]byte
	n, err := c.Read(rest[:])
	if n > 0 || !errors.Is(err, io.EOF) {
		errs.add("%s: after the count+CRC reply: %d more bytes, %v (expected FIN)", label, n, err)
		return 0
	}
	progress.VerifiedBytes.Add(off)
	return off
}

func runBulk(target string, p Params) BulkResult {
	progress.setPhase("bulk")
	streams := p.int("streams", 16)
	limit := int64(p.num("bytesPerStream", 16*mib))
	chunk := p.int("chunkSize", 64*kib)
	sink := p.num("sink", 0) != 0
	errs := &Errors{}
	start := time.Now()
	// Timed (durationMs given): every stream sends until warmupMs + durationMs, and the figure is
	// the bytes verified on arrival during durationMs after warmupMs (buffered bytes still in flight
	// when sending stops are verified but not counted); bytesPerStream is then only a cap.
	var stop func() bool
	var window *Window
	_, timed := p["durationMs"]
	if timed {
		window = &Window{from: start.Add(p.ms("warmupMs", 0))}
		window.until = window.from.Add(p.ms("durationMs", 0))
		until := window.until
		stop = func() bool { return !time.Now().Before(until) }
		if _, capped := p["bytesPerStream"]; !capped {
			limit = 1 << 60
		}
		if sink {
			die(2, "bulk: a timed sink (sink with durationMs) is not supported")
		}
	}
	results := make([]int64, streams)
	var wg sync.WaitGroup
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if sink {
				results[i] = bulkSink(target, uint64(1000+i), limit, stop, chunk, errs, "bulk sink")
			} else {
				results[i] = bulkEcho(target, uint64(1000+i), limit, stop, chunk, errs, "bulk", window)
			}
		}(i)
	}
	wg.Wait()
	seconds := time.Since(start).Seconds()
	var verified int64
	for _, r := range results {
		verified += r
	}
	mode := "echo"
	if sink {
		mode = "sink"
	}
	mbps := float64(verified) / seconds / 1e6
	if timed {
		seconds = window.until.Sub(window.from).Seconds()
		mbps = float64(window.bytes.Load()) / seconds / 1e6
	}
	r := BulkResult{
		Base:           Base{Workload: "bulk", Seconds: seconds, VerifiedBytes: verified},
		Streams:        streams,
		BytesPerStream: limit,
		Mode:           mode,
		Mbps:           mbps,
	}
	if timed {
		r.WindowBytes = window.bytes.Load()
	}
	r.setErrors(errs)
	return r
}

// ---------------------------------------------------------------------------------------------
// Request/response

// ReqRespResult: latency counts every exchange started in the measuring window, however late it ends.
type ReqRespResult struct {
	Base
	Clients  int     `json:"clients"`
	Size     int     `json:"size"`
	Requests int64   `json:"requests"`
	Rps      float64 `json:"rps"`
	Latency  Latency `json:"latency"`
}

// runReqResp: C clients each write a random request (client id and sequence number first), wait for
// its whole echo and check it, and repeat until the window ends.
func runReqResp(target string, p Params, firstClient int, stop *atomic.Bool) ReqRespResult {
	progress.setPhase("reqresp")
	clients := p.int("clients", 64)
	size := p.int("size", 1024)
	start := time.Now()
	measureFrom := start.Add(p.ms("warmupMs", 500))
	deadline := measureFrom.Add(p.ms("durationMs", 3000))
	errs := &Errors{}
	var mu sync.Mutex
	hist := newHist()
	var verified atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			c, err := dial(target)
			if err != nil {
				errs.add("reqresp: client %d: connect: %s", id, describe(err))
				return
			}
			rec := newRecorder(&mu, hist)
			defer rec.flush()
			rng := newRng(uint64(id) + 1)
			req := make([]byte, size)
			resp := make([]byte, size)
			var pushed time.Time
			now := time.Now()
			for seq := 0; seq < maxCount; seq++ {
				if !now.Before(deadline) || (stop != nil && stop.Load()) {
					break
				}
				makeRequest(req, &rng, uint32(id), uint32(seq))
				t0 := time.Now()
				keepDeadline(c, t0, &pushed)
				if err := exchange(c, req, resp); err != nil {
					errs.add("reqresp: client %d request %d: %s", id, seq, err)
					closeConn(c)
					return
				}
				t1 := time.Now()
				now = t1
				verified.Add(int64(size))
				progress.Requests.Add(1)
				progress.VerifiedBytes.Add(int64(size))
				if !t0.Before(measureFrom) {
					rec.add(t1.Sub(t0))
				}
			}
			if err := closeClean(c); err != nil {
				errs.add("reqresp: client %d: %s", id, err)
			}
		}(firstClient + i)
	}
	wg.Wait()
	seconds := deadline.Sub(measureFrom).Seconds()
	if seconds <= 0 {
		seconds = 1e-9
	}
	lat := hist.summary()
	r := ReqRespResult{
		Base:     Base{Workload: "reqresp", Seconds: seconds, VerifiedBytes: verified.Load()},
		Clients:  clients,
		Size:     size,
		Requests: lat.Count,
		Rps:      float64(lat.Count) / seconds,
		Latency:  lat,
	}
	r.setErrors(errs)
	return r
}

// ---------------------------------------------------------------------------------------------
// Connection rate

// ConnRateResult: latency is the whole open–echo–close cycle.
type ConnRateResult struct {
	Base
	Workers     int     `json:"workers"`
	Connections int64   `json:"connections"`
	PerSecond   float64 `json:"perSecond"`
	Latency     Latency `json:"latency"`
}

// runConnRate: W workers each open a connection, echo `size` random bytes, close with FIN both ways,
// and repeat; a worker gives up after 100 failures.
func runConnRate(target string, p Params) ConnRateResult {
	progress.setPhase("connrate")
	workers := p.int("workers", 32)
	size := p.int("size", 64)
	start := time.Now()
	measureFrom := start.Add(p.ms("warmupMs", 500))
	deadline := measureFrom.Add(p.ms("durationMs", 3000))
	errs := &Errors{}
	var mu sync.Mutex
	hist := newHist()
	var verified atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rec := newRecorder(&mu, hist)
			defer rec.flush()
			rng := newRng(uint64(50_000 + w))
			req := make([]byte, size)
			resp := make([]byte, size)
			failures := 0
			for seq := 0; seq < maxCount && failures < 100; seq++ {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				c, err := dial(target)
				if err != nil {
					failures++
					errs.add("connrate: worker %d connection %d: connect: %s", w, seq, describe(err))
					continue
				}
				makeRequest(req, &rng, uint32(w), uint32(seq))
				_ = c.SetDeadline(t0.Add(stallTimeout))
				if err := exchange(c, req, resp); err != nil {
					closeConn(c)
					failures++
					errs.add("connrate: worker %d connection %d: %s", w, seq, err)
					continue
				}
				if err := closeClean(c); err != nil {
					failures++
					errs.add("connrate: worker %d connection %d: %s", w, seq, err)
					continue
				}
				t1 := time.Now()
				verified.Add(int64(size))
				progress.Requests.Add(1)
				progress.VerifiedBytes.Add(int64(size))
				if !t0.Before(measureFrom) {
					rec.add(t1.Sub(t0))
				}
			}
		}(w)
	}
	wg.Wait()
	seconds := deadline.Sub(measureFrom).Seconds()
	if seconds <= 0 {
		seconds = 1e-9
	}
	lat := hist.summary()
	r := ConnRateResult{
		Base:        Base{Workload: "connrate", Seconds: seconds, VerifiedBytes: verified.Load()},
		Workers:     workers,
		Connections: lat.Count,
		PerSecond:   float64(lat.Count) / seconds,
		Latency:     lat,
	}
	r.setErrors(errs)
	return r
}

// ---------------------------------------------------------------------------------------------
// Idle connections

type IdleResult struct {
	Base
	Connections int     `json:"connections"`
	Held        int     `json:"held"`
	OpenSeconds float64 `json:"openSeconds"`
	OpenRate    float64 `json:"openRate"`
}

// pool runs work(i) for i < count, at most concurrency at a time.
func pool(count, concurrency int, work func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	if concurrency > count {
		concurrency = count
	}
	for l := 0; l < concurrency; l++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				work(i)
			}
		}()
	}
	wg.Wait()
}

// runIdle opens K connections and echoes 32 random bytes on each, holds them for onHeld, echoes
// again on each, then closes them (FIN both ways).
func runIdle(target string, p Params, onHeld func()) IdleResult {
	k := p.int("connections", 9000)
	concurrency := p.int("concurrency", 200)
	settle := p.ms("settleMs", 500)
	errs := &Errors{}
	conns := make([]*net.TCPConn, k)
	var verified atomic.Int64
	ping := func(i, round int) {
		c := conns[i]
		if c == nil {
			return
		}
		rng := newRng(uint64(777_000_000 + 2*i + round))
		var req, resp [32]byte
		makeRequest(req[:], &rng, uint32(i), uint32(round))
		_ = c.SetDeadline(time.Now().Add(stallTimeout))
		if err := exchange(c, req[:], resp[:]); err != nil {
			conns[i] = nil
			closeConn(c)
			errs.add("idle: connection %d round %d: %s", i, round, err)
			return
		}
		verified.Add(32)
		progress.VerifiedBytes.Add(32)
	}
	progress.setPhase("idle: opening")
	start := time.Now()
	pool(k, concurrency, func(i int) {
		c, err := dial(target)
		if err != nil {
			errs.add("idle: connect %d: %s", i, describe(err))
			return
		}
		conns[i] = c
		ping(i, 0)
	})
	openSeconds := time.Since(start).Seconds()
	time.Sleep(settle)
	progress.setPhase("idle: held")
	heldFrom := time.Now()
	onHeld()
	seconds := time.Since(heldFrom).Seconds()
	progress.setPhase("idle: verifying")
	pool(k, concurrency, func(i int) { ping(i, 1) })
	var held atomic.Int64
	progress.setPhase("idle: closing")
	pool(k, concurrency, func(i int) {
		c := conns[i]
		if c == nil {
			return
		}
		if err := closeClean(c); err != nil {
			errs.add("idle: close %d: %s", i, err)
			return
		}
		held.Add(1)
	})
	r := IdleResult{
		Base:        Base{Workload: "idle", Seconds: seconds, VerifiedBytes: verified.Load()},
		Connections: k,
		Held:        int(held.Load()),
		OpenSeconds: openSeconds,
		OpenRate:    float64(k) / openSeconds,
	}
	r.setErrors(errs)
	return r
}

// ---------------------------------------------------------------------------------------------
// Head-of-line

type HolResult struct {
	Base
	Clients  int     `json:"clients"`
	Requests int64   `json:"requests"`
	Rps      float64 `json:"rps"`
	Latency  Latency `json:"latency"`
	BulkMbps float64 `json:"bulkMbps"`
}

// runHol measures small request/response clients while bulk streams run flat out over the same path.
func runHol(target string, p Params) HolResult {
	errs := &Errors{}
	start := time.Now()
	var stopBulk atomic.Bool
	bulkStreams := p.int("bulkStreams", 1)
	bulk := make([]int64, bulkStreams)
	var wg sync.WaitGroup
	for i := 0; i < bulkStreams; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			bulk[i] = bulkEcho(target, uint64(9000+i), 1<<60, stopBulk.Load, 64*kib, errs, "hol bulk", nil)
		}(i)
	}
	small := runReqResp(target, Params{
		"clients":    p.num("clients", 16),
		"size":       p.num("size", 1024),
		"durationMs": p.num("durationMs", 3000),
		"warmupMs":   p.num("warmupMs", 500),
	}, 100_000, nil)
	progress.setPhase("hol: stopping the bulk streams")
	stopBulk.Store(true)
	wg.Wait()
	var bulkBytes int64
	for _, b := range bulk {
		bulkBytes += b
	}
	bulkSeconds := time.Since(start).Seconds()
	count, samples := errs.snapshot()
	samples = append(samples, small.ErrorSamples...)
	if len(samples) > 5 {
		samples = samples[:5]
	}
	return HolResult{
		Base: Base{
			Workload:      "hol",
			Seconds:       small.Seconds,
			VerifiedBytes: small.VerifiedBytes + bulkBytes,
			Errors:        count + small.Errors,
			ErrorSamples:  samples,
		},
		Clients:  small.Clients,
		Requests: small.Requests,
		Rps:      small.Rps,
		Latency:  small.Latency,
		BulkMbps: float64(bulkBytes) / bulkSeconds / 1e6,
	}
}
