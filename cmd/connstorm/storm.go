package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

type options struct {
	conns    int
	duration time.Duration
	payload  int
	close    string
	addr     string
}

// result is what a storm did. The JSON names are read by cmd/bench.
type result struct {
	Conns     uint64  `json:"conns"`
	Failures  uint64  `json:"failures"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"conn_per_s"`
	Port      string  `json:"port"` // the listener's port
}

// storm runs the dialers against a listener of its own until the
// duration is over.
func storm(o options) (result, error) {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return result{}, err
	}
	defer ln.Close()
	go serve(ln, o.payload)

	var done, failed atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for range o.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, max(o.payload, 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := once(ln.Addr().String(), buf[:o.payload], o.close == "rst"); err != nil {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		}()
	}
	time.Sleep(o.duration)
	close(stop)
	wg.Wait()
	secs := time.Since(start).Seconds()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return result{Conns: done.Load(), Failures: failed.Load(), Seconds: secs,
		PerSecond: float64(done.Load()) / secs, Port: port}, nil
}

// once makes one connection: send the payload, read the echo, close.
func once(addr string, payload []byte, rst bool) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if len(payload) > 0 {
		if _, err := c.Write(payload); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, payload); err != nil {
			return err
		}
	}
	if rst {
		c.(*net.TCPConn).SetLinger(0)
	}
	return nil
}

// serve echoes payload bytes on every connection and closes after the
// client did.
func serve(ln net.Listener, payload int) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go func() {
			defer c.Close()
			if payload > 0 {
				buf := make([]byte, payload)
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				c.Write(buf)
			}
			io.Copy(io.Discard, c)
		}()
	}
}
