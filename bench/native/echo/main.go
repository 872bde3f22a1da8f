// Command echo is the bench's compiled backend: every byte back (FIN after the client's FIN), and a
// sink mode for bulk streams that open with the 8-byte magic "PLTSINK1": then it reads to FIN and
// answers with the byte count (u64 little-endian) and CRC-32/IEEE (u32 little-endian) of everything
// after the magic, then FIN.
//
// Usage: echo [--listen HOST:PORT] (default 127.0.0.1:0); prints "echo listening on HOST:PORT" once
// bound. Exits 0 on SIGTERM/SIGINT.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

const sinkMagic = "PLTSINK1"

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "HOST:PORT to listen on")
	flag.IntVar(&largeSize, "buffer", largeSize, "read buffer of a bulk connection, bytes")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "echo: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("echo listening on %s\n", ln.Addr())
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
			// EMFILE and the like: back off instead of spinning.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go serve(c.(*net.TCPConn))
	}
}

// Buffers: every connection starts with a small one and moves to a large one once a read fills the
// small one (a bulk stream); both come from pools, so that thousands of connections opened per second,
// or held idle, cost little.
var (
	smallPool = sync.Pool{New: func() any { b := make([]byte, 16*1024); return &b }}
	largeSize = 256 * 1024
	largePool = sync.Pool{New: func() any { b := make([]byte, largeSize); return &b }}
)

func serve(c *net.TCPConn) {
	defer c.Close() // Go's accepted TCP connections already have TCP_NODELAY set
	bp := smallPool.Get().(*[]byte)
	pool := &smallPool
	defer func() { pool.Put(bp) }()
	buf := *bp
	// Decide the mode on the first bytes: the magic (possibly over several reads), else echo. A
	// client whose first write is a proper prefix of the magic and then waits is not supported.
	have := 0
	for have < len(sinkMagic) {
		n, err := c.Read(buf[have:])
		have += n
		if !bytes.HasPrefix([]byte(sinkMagic), buf[:min(have, len(sinkMagic))]) {
			break
		}
		if err != nil {
			if have > 0 {
				_, _ = c.Write(buf[:have])
			}
			if errors.Is(err, io.EOF) {
				_ = c.CloseWrite()
			}
			return
		}
	}
	if have >= len(sinkMagic) && bytes.Equal(buf[:len(sinkMagic)], []byte(sinkMagic)) {
		sink(c, buf[len(sinkMagic):have])
		return
	}
	if _, err := c.Write(buf[:have]); err != nil {
		return
	}
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
			if n == len(buf) && pool == &smallPool {
				pool.Put(bp)
				bp, pool = largePool.Get().(*[]byte), &largePool
				buf = *bp
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// Both FINs exchanged once ours is out: the deferred Close then ends cleanly.
				_ = c.CloseWrite()
			}
			return
		}
	}
}

func sink(c *net.TCPConn, first []byte) {
	count := int64(len(first))
	crc := crc32.Update(0, crc32.IEEETable, first)
	bp := largePool.Get().(*[]byte)
	defer largePool.Put(bp)
	buf := *bp
	for {
		n, err := c.Read(buf)
		if n > 0 {
			count += int64(n)
			crc = crc32.Update(crc, crc32.IEEETable, buf[:n])
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			break
		}
	}
	var reply [12]byte
	binary.LittleEndian.PutUint64(reply[0:], uint64(count))
	binary.LittleEndian.PutUint32(reply[8:], crc)
	if _, err := c.Write(reply[:]); err != nil {
		return
	}
	_ = c.CloseWrite()
}

func min(a, b int) int {
	if a < b {
		return a
	}
	return b
}
