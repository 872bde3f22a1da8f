// Command yamux is the bench's Go reference multiplexer: a proxy and a server built on Debian's
// golang-github-hashicorp-yamux-dev with yamux.DefaultConfig() (256 KiB stream window), the pair a
// Go user would write.
//
//	yamux proxy  --listen HOST:PORT --upstream HOST:PORT   one TCP link to the server; one yamux stream per client
//	yamux server --listen HOST:PORT --target HOST:PORT     accepts links; forwards each stream to a new TCP connection
//
// Bytes are copied both ways with io.Copy; a FIN on one side is passed on as a half-close (stream
// Close, which in hashicorp/yamux is a half-close, or TCP CloseWrite); an error on either side closes
// both. Each prints "yamux-go <role> listening on HOST:PORT" once bound and exits 0 on SIGTERM/SIGINT.
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

	"github.com/hashicorp/yamux"
)

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "yamux-go: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "proxy" && os.Args[1] != "server") {
		fatal("usage: yamux proxy --listen HOST:PORT --upstream HOST:PORT | yamux server --listen HOST:PORT --target HOST:PORT")
	}
	role := os.Args[1]
	fs := flag.NewFlagSet(role, flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "HOST:PORT to listen on")
	upstream := fs.String("upstream", "", "proxy: the yamux server's HOST:PORT")
	target := fs.String("target", "", "server: where each stream is forwarded, HOST:PORT")
	_ = fs.Parse(os.Args[2:])

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fatal("listen %s: %v", *listen, err)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		_ = ln.Close()
		os.Exit(0)
	}()
	switch role {
	case "proxy":
		if *upstream == "" {
			fatal("proxy: --upstream is required")
		}
		runProxy(ln, *upstream)
	case "server":
		if *target == "" {
			fatal("server: --target is required")
		}
		runServer(ln, *target)
	}
}

func config() *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = os.Stderr
	return c
}

func runProxy(ln net.Listener, upstream string) {
	link, err := net.DialTimeout("tcp", upstream, 10*time.Second)
	if err != nil {
		fatal("proxy: dial %s: %v", upstream, err)
	}
	_ = link.(*net.TCPConn).SetNoDelay(true)
	session, err := yamux.Client(link, config())
	if err != nil {
		fatal("proxy: yamux client: %v", err)
	}
	go func() {
		<-session.CloseChan()
		fatal("proxy: the link to %s closed", upstream)
	}()
	fmt.Printf("yamux-go proxy listening on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go func(c *net.TCPConn) {
			_ = c.SetNoDelay(true)
			stream, err := session.OpenStream()
			if err != nil {
				_ = c.Close()
				return
			}
			splice(c, stream)
		}(c.(*net.TCPConn))
	}
}

func runServer(ln net.Listener, target string) {
	fmt.Printf("yamux-go server listening on %s\n", ln.Addr())
	for {
		link, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		_ = link.(*net.TCPConn).SetNoDelay(true)
		go func(link net.Conn) {
			session, err := yamux.Server(link, config())
			if err != nil {
				_ = link.Close()
				return
			}
			for {
				stream, err := session.AcceptStream()
				if err != nil {
					return
				}
				go func(stream *yamux.Stream) {
					c, err := net.DialTimeout("tcp", target, 10*time.Second)
					if err != nil {
						_ = stream.Close()
						return
					}
					_ = c.(*net.TCPConn).SetNoDelay(true)
					splice(c.(*net.TCPConn), stream)
				}(stream)
			}
		}(link)
	}
}

// splice copies both ways; EOF on one side half-closes the other; an error closes both.
func splice(c *net.TCPConn, stream *yamux.Stream) {
	var wg sync.WaitGroup
	var once sync.Once
	abort := func() {
		once.Do(func() {
			_ = c.Close()
			_ = stream.Close()
		})
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if _, err := io.Copy(stream, c); err != nil {
			abort()
			return
		}
		_ = stream.Close() // half-close: FIN on the stream
	}()
	go func() {
		defer wg.Done()
		if _, err := io.Copy(c, stream); err != nil {
			abort()
			return
		}
		_ = c.CloseWrite()
	}()
	wg.Wait()
	_ = c.Close()
	_ = stream.Close()
}
