// SPDX-License-Identifier: Apache-2.0

// Command connstorm is a TCP connection load generator (tracer/loadgen):
// N concurrent dialers against a listener of its own on loopback, each
// connection connected, a payload sent and echoed, then closed with FIN or
// RST. It prints the connections per second, for `make bench`. With -udp,
// a UDP storm: datagrams, exchanges or new flows per second.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/conntrace/conntrace/tracer/loadgen"
)

func main() {
	var o loadgen.Options
	flag.IntVar(&o.Conns, "c", 8, "concurrent dialers")
	flag.DurationVar(&o.Duration, "d", 10*time.Second, "how long to run")
	flag.IntVar(&o.Payload, "payload", 0, "bytes each side sends per connection")
	flag.StringVar(&o.Close, "close", "fin", "how the client closes: fin or rst")
	flag.StringVar(&o.Addr, "addr", "127.0.0.1:0", "address the listener binds")
	udp := flag.String("udp", "", "a UDP storm instead: stream (datagrams one way), rr (request and answer on one socket) or flows (each exchange from a new socket)")
	asJSON := flag.Bool("json", false, "print the result as one JSON object")
	flag.Parse()
	if flag.NArg() > 0 || o.Conns < 1 || o.Duration <= 0 || o.Payload < 0 || (o.Close != "fin" && o.Close != "rst") ||
		(*udp != "" && *udp != loadgen.UDPStream && *udp != loadgen.UDPRequestResponse && *udp != loadgen.UDPFlows) {
		fmt.Fprintln(os.Stderr, "connstorm: usage: connstorm [-c N] [-d DURATION] [-payload BYTES] [-close fin|rst | -udp stream|rr|flows] [-addr HOST:PORT] [-json]")
		os.Exit(2)
	}
	var r loadgen.Result
	var err error
	unit := "connections"
	if *udp != "" {
		unit = map[string]string{loadgen.UDPStream: "datagrams", loadgen.UDPRequestResponse: "exchanges", loadgen.UDPFlows: "flows"}[*udp]
		r, err = loadgen.UDPStorm(loadgen.UDPOptions{Senders: o.Conns, Duration: o.Duration, Payload: o.Payload, Mode: *udp, Addr: o.Addr})
	} else {
		r, err = loadgen.Storm(o)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "connstorm: %v\n", err)
		os.Exit(1)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("%d %s in %.1fs: %.0f/s, %d failures (%s)\n", r.Conns, unit, r.Seconds, r.PerSecond, r.Failures, r.Port)
}
