// Command delay is the bench's WAN link: a TCP relay that holds every byte for a one-way delay in each
// direction (25 ms each way = 50 ms round trip), optionally at a link rate, with bounded buffering.
//
//	delay --listen HOST:PORT --target HOST:PORT [--delay 25ms] [--rate BYTES_PER_SECOND] [--buffer BYTES]
//	      [--flip-at N --flip-dir down|up] [--cut-at N]
//
// Per connection and direction, a reader stamps each chunk with its release time — arrival, plus the
// time to serialise it at --rate after the chunks before it (0: unlimited), plus --delay — and a writer
// sends it then; a FIN is passed on after the same delay. At most --buffer bytes wait per direction:
// beyond that the reader stops reading and TCP's flow control pushes back (the default holds twice the
// bytes in flight at --rate, so that a paced link does not queue seconds of data; unpaced, 64 MiB).
//
// Fault injection, for the generator's tests: --flip-at N flips the byte at stream offset N of every
// connection (direction down: target to client, the default; up: client to target); --cut-at N ends
// the down direction with a FIN after N bytes.
//
// Prints "delay listening on HOST:PORT" once bound; exits 0 on SIGTERM/SIGINT.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

type options struct {
	target  string
	delay   time.Duration
	rate    float64
	buffer  int
	flipAt  int64
	flipDir string
	cutAt   int64
}

func main() {
	var o options
	listen := flag.String("listen", "127.0.0.1:0", "HOST:PORT to listen on")
	flag.StringVar(&o.target, "target", "", "HOST:PORT to relay to")
	flag.DurationVar(&o.delay, "delay", 25*time.Millisecond, "one-way delay, each direction")
	flag.Float64Var(&o.rate, "rate", 0, "link rate per direction in bytes per second (0: unlimited)")
	flag.IntVar(&o.buffer, "buffer", 0, "most bytes held per connection and direction (default: 64 MiB; with --rate, twice the bytes in flight at that rate plus 256 KiB)")
	flag.Int64Var(&o.flipAt, "flip-at", -1, "fault: flip the byte at this stream offset of every connection")
	flag.StringVar(&o.flipDir, "flip-dir", "down", "fault: direction of --flip-at: down (target to client) or up")
	flag.Int64Var(&o.cutAt, "cut-at", -1, "fault: end the down direction with a FIN after this many bytes")
	flag.Parse()
	if o.target == "" {
		fmt.Fprintln(os.Stderr, "delay: --target is required")
		os.Exit(2)
	}
	if o.buffer == 0 {
		o.buffer = 64 << 20
		if o.rate > 0 {
			o.buffer = int(2*o.rate*o.delay.Seconds()) + 256<<10
		}
	}
	if o.buffer < 64<<10 {
		o.buffer = 64 << 10
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "delay: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("delay listening on %s (delay %s each way, rate %s, buffer %d bytes)\n", ln.Addr(), o.delay, rateText(o.rate), o.buffer)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		_ = ln.Close()
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go relay(c.(*net.TCPConn), o)
	}
}

func rateText(rate float64) string {
	if rate <= 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%.1f MB/s", rate/1e6)
}

func relay(client *net.TCPConn, o options) {
	server, err := net.DialTimeout("tcp", o.target, 10*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	srv := server.(*net.TCPConn)
	_ = client.SetNoDelay(true)
	_ = srv.SetNoDelay(true)
	var once sync.Once
	abort := func() {
		once.Do(func() {
			_ = client.SetLinger(0)
			_ = srv.SetLinger(0)
			_ = client.Close()
			_ = srv.Close()
		})
	}
	up := fault{flipAt: -1, cutAt: -1}
	down := fault{flipAt: -1, cutAt: o.cutAt}
	if o.flipDir == "up" {
		up.flipAt = o.flipAt
	} else {
		down.flipAt = o.flipAt
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); direction(client, srv, o, up, abort) }()
	go func() { defer wg.Done(); direction(srv, client, o, down, abort) }()
	wg.Wait()
	_ = client.Close()
	_ = srv.Close()
}

type fault struct {
	flipAt int64
	cutAt  int64
}

type chunk struct {
	data    []byte
	release time.Time
	fin     bool
}

// queue: chunks in order, at most `limit` bytes of them.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	items  []chunk
	bytes  int
	limit  int
	closed bool
}

func newQueue(limit int) *queue {
	q := &queue{limit: limit}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *queue) push(c chunk) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed && q.bytes > 0 && q.bytes+len(c.data) > q.limit {
		q.cond.Wait()
	}
	if q.closed {
		return false
	}
	q.items = append(q.items, c)
	q.bytes += len(c.data)
	q.cond.Broadcast()
	return true
}

// popAll waits for at least one chunk and takes every chunk queued.
func (q *queue) popAll(into []chunk) ([]chunk, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed && len(q.items) == 0 {
		q.cond.Wait()
	}
	if len(q.items) == 0 {
		return into, false
	}
	into = append(into, q.items...)
	for i := range q.items {
		q.items[i] = chunk{}
	}
	q.items = q.items[:0]
	return into, true
}

func (q *queue) release(n int) {
	q.mu.Lock()
	q.bytes -= n
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

var pool = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// recycle returns a full-size read buffer to the pool (small chunks were copied out of theirs).
func recycle(data []byte) {
	if cap(data) == 64<<10 {
		b := data[:cap(data)]
		pool.Put(&b)
	}
}

// direction relays src to dst through the delay line; EOF becomes a delayed half-close, an error
// resets both connections.
func direction(src, dst *net.TCPConn, o options, f fault, abort func()) {
	q := newQueue(o.buffer)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var batch []chunk
		for {
			var ok bool
			batch, ok = q.popAll(batch[:0])
			if !ok {
				return
			}
			for i := 0; i < len(batch); {
				if wait := time.Until(batch[i].release); wait > 0 {
					time.Sleep(wait)
				}
				if batch[i].fin {
					_ = dst.CloseWrite()
					q.close()
					return
				}
				// This chunk and every following one already due go out in one writev.
				now := time.Now()
				j := i + 1
				for j < len(batch) && !batch[j].fin && !batch[j].release.After(now) {
					j++
				}
				bufs := make(net.Buffers, 0, j-i)
				n := 0
				for k := i; k < j; k++ {
					bufs = append(bufs, batch[k].data)
					n += len(batch[k].data)
				}
				if _, err := bufs.WriteTo(dst); err != nil {
					q.close()
					abort()
					return
				}
				for k := i; k < j; k++ {
					recycle(batch[k].data)
					batch[k] = chunk{}
				}
				q.release(n)
				i = j
			}
		}
	}()
	var offset int64
	var busyUntil time.Time
	for {
		bp := pool.Get().(*[]byte)
		buf := *bp
		n, err := src.Read(buf)
		if n > 0 {
			data := buf[:n]
			if f.flipAt >= offset && f.flipAt < offset+int64(n) {
				data[f.flipAt-offset] ^= 0x5a
			}
			cut := f.cutAt >= 0 && offset+int64(n) >= f.cutAt
			if cut {
				data = data[:f.cutAt-offset]
			}
			if len(data) < 16<<10 {
				// Small reads are copied out so that the buffer bound is a memory bound too.
				small := append([]byte(nil), data...)
				pool.Put(bp)
				data = small
			}
			offset += int64(len(data))
			if !q.push(chunk{data: data, release: stamp(&busyUntil, len(data), o)}) {
				return
			}
			if cut {
				q.push(chunk{fin: true, release: stamp(&busyUntil, 0, o)})
				<-done
				return
			}
		} else {
			pool.Put(bp)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				q.push(chunk{fin: true, release: stamp(&busyUntil, 0, o)})
				<-done
			} else {
				q.close()
				abort()
			}
			return
		}
	}
}

// stamp: when a chunk of n bytes arriving now leaves the far end of the link.
func stamp(busyUntil *time.Time, n int, o options) time.Time {
	now := time.Now()
	start := now
	if busyUntil.After(now) {
		start = *busyUntil
	}
	end := start
	if o.rate > 0 && n > 0 {
		end = start.Add(time.Duration(float64(n) / o.rate * float64(time.Second)))
	}
	*busyUntil = end
	return end.Add(o.delay)
}
