// Command loadgen is the bench's compiled load generator: the workloads of the JavaScript generator
// (src/cli/LoadGen.ts driven by bench/loadgen.ts), with the same command line and the same
// `RESULT {json}` line, written in Go (standard library only) so that it is not the bottleneck.
//
// Usage:
//
//	loadgen --workload bulk|reqresp|connrate|idle|hol --target HOST:PORT [--params JSON] [--timeout SECONDS]
//
// Every payload is pseudo-random per connection (seeded xorshift) and every byte that comes back is
// checked; a sink-mode bulk stream is checked by length and CRC-32 (IEEE) reported by the backend
// (bench/native/echo). Every loop is bounded in count and in time.
//
// Output: one line `RESULT {json}` on stdout (the workload's figures, `errors`, `errorSamples`, and
// `generator.cpu` from getrusage). For idle, `HELD` is printed once every connection is open and
// verified, then a line on stdin (at most 30 s) lets it verify and close them.
//
// Exit codes: 0 all verified; 1 a check failed (mismatch, reset, missing bytes: the RESULT line is
// still printed, with the first messages in errorSamples); 2 bad usage or internal error; 3 the hard
// deadline (--timeout, default from the workload's parameters) passed before the workload ended.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Params are the workload's numeric parameters (`--params`), as the JavaScript generator takes them.
type Params map[string]float64

func (p Params) num(name string, fallback float64) float64 {
	if v, ok := p[name]; ok {
		return v
	}
	return fallback
}

func (p Params) int(name string, fallback int) int { return int(p.num(name, float64(fallback))) }

func (p Params) ms(name string, fallback float64) time.Duration {
	return time.Duration(p.num(name, fallback) * float64(time.Millisecond))
}

// Progress: live counters (printed every second with LOADGEN_PROGRESS=1, and on a hard timeout).
type Progress struct {
	Connected     atomic.Int64
	Opened        atomic.Int64
	VerifiedBytes atomic.Int64
	Requests      atomic.Int64
	Errors        atomic.Int64
	phase         atomic.Value
}

func (p *Progress) setPhase(s string) { p.phase.Store(s) }

func (p *Progress) String() string {
	phase, _ := p.phase.Load().(string)
	return fmt.Sprintf(`{"phase":%q,"connected":%d,"opened":%d,"verifiedBytes":%d,"requests":%d,"errors":%d}`,
		phase, p.Connected.Load(), p.Opened.Load(), p.VerifiedBytes.Load(), p.Requests.Load(), p.Errors.Load())
}

var progress = &Progress{}

// Errors counts failed checks and keeps the first few messages.
type Errors struct {
	mu      sync.Mutex
	count   int
	samples []string
}

func (e *Errors) add(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.mu.Lock()
	e.count++
	if len(e.samples) < 5 {
		e.samples = append(e.samples, msg)
	}
	e.mu.Unlock()
	progress.Errors.Add(1)
}

func (e *Errors) snapshot() (int, []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.count, append([]string{}, e.samples...)
}

// Base is what every workload reports (the JavaScript generator's BaseResult).
type Base struct {
	Workload      string   `json:"workload"`
	Seconds       float64  `json:"seconds"`
	VerifiedBytes int64    `json:"verifiedBytes"`
	Errors        int      `json:"errors"`
	ErrorSamples  []string `json:"errorSamples"`
}

func (b *Base) setErrors(e *Errors) {
	b.Errors, b.ErrorSamples = e.snapshot()
}

// CPU is this process's CPU time during the workload (getrusage), as the JavaScript generator's.
type CPU struct {
	User   float64 `json:"user"`
	System float64 `json:"system"`
	Wall   float64 `json:"wall"`
	Share  float64 `json:"share"`
}

func rusage() (user, system float64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN(), math.NaN()
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime), tv(ru.Stime)
}

func die(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(code)
}

// waitForLine blocks until a line arrives on stdin, stdin ends, or timeout passes.
func waitForLine(timeout time.Duration) {
	done := make(chan struct{}, 1)
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		done <- struct{}{}
	}()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// defaultTimeout: the hard deadline when --timeout is not given: the workload's own length plus a
// generous margin (the harness waits 180 s for the RESULT line).
func defaultTimeout(workload string, p Params) time.Duration {
	switch workload {
	case "reqresp", "connrate", "hol":
		return p.ms("warmupMs", 500) + p.ms("durationMs", 3000) + 60*time.Second
	case "bulk":
		if _, ok := p["durationMs"]; ok {
			return p.ms("durationMs", 0) + 60*time.Second
		}
		return 150 * time.Second
	default:
		return 150 * time.Second
	}
}

func main() {
	workload := flag.String("workload", "reqresp", "bulk, reqresp, connrate, idle or hol")
	targetFlag := flag.String("target", "127.0.0.1:7000", "HOST:PORT of the echo service (IPv6 in brackets)")
	paramsFlag := flag.String("params", "{}", "workload parameters as a JSON object of numbers")
	timeoutFlag := flag.Float64("timeout", 0, "hard deadline in seconds (default: from the workload's parameters)")
	flag.Parse()

	var params Params
	if err := json.Unmarshal([]byte(*paramsFlag), &params); err != nil {
		die(2, "--params: %v", err)
	}
	if params == nil {
		params = Params{}
	}
	target := strings.TrimSpace(*targetFlag)
	if !strings.Contains(target, ":") {
		die(2, "--target: expected HOST:PORT, got %q", target)
	}

	timeout := defaultTimeout(*workload, params)
	if *timeoutFlag > 0 {
		timeout = time.Duration(*timeoutFlag * float64(time.Second))
	}
	progress.setPhase("starting")
	hard := time.AfterFunc(timeout, func() {
		die(3, "hard deadline of %.1f s exceeded in workload %s against %s; counters %s",
			timeout.Seconds(), *workload, target, progress.String())
	})
	defer hard.Stop()
	if os.Getenv("LOADGEN_PROGRESS") == "1" {
		go func() {
			for range time.Tick(time.Second) {
				fmt.Fprintf(os.Stderr, "loadgen: %s\n", progress.String())
			}
		}()
	}

	u0, s0 := rusage()
	t0 := time.Now()
	var result any
	var errorCount int
	switch *workload {
	case "bulk":
		r := runBulk(target, params)
		result, errorCount = r, r.Errors
	case "reqresp":
		r := runReqResp(target, params, 0, nil)
		result, errorCount = r, r.Errors
	case "connrate":
		r := runConnRate(target, params)
		result, errorCount = r, r.Errors
	case "idle":
		r := runIdle(target, params, func() {
			fmt.Println("HELD")
			waitForLine(30 * time.Second)
		})
		result, errorCount = r, r.Errors
	case "hol":
		r := runHol(target, params)
		result, errorCount = r, r.Errors
	default:
		die(2, "unknown workload %q (bulk, reqresp, connrate, idle, hol)", *workload)
	}
	wall := time.Since(t0).Seconds()
	u1, s1 := rusage()
	cpu := CPU{User: u1 - u0, System: s1 - s0, Wall: wall}
	cpu.Share = (cpu.User + cpu.System) / wall

	// The workload's fields, then the generator's (the JavaScript generator's layout).
	raw, err := json.Marshal(result)
	if err != nil {
		die(2, "result: %v", err)
	}
	var fields map[string]any
	_ = json.Unmarshal(raw, &fields)
	fields["generator"] = map[string]any{"runtime": "go", "version": runtime.Version(), "cpu": cpu}
	out, _ := json.Marshal(fields)
	hard.Stop()
	fmt.Printf("RESULT %s\n", out)
	if errorCount > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: %d check(s) failed (see errorSamples)\n", errorCount)
		os.Exit(1)
	}
}
