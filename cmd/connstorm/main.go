// Command connstorm is a TCP connection load generator: N concurrent
// dialers against a listener of its own on loopback, each connection
// connected, a payload sent and echoed, then closed with FIN or RST. It
// prints the connections per second, for `make bench`.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	var o options
	flag.IntVar(&o.conns, "c", 8, "concurrent dialers")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "how long to run")
	flag.IntVar(&o.payload, "payload", 0, "bytes each side sends per connection")
	flag.StringVar(&o.close, "close", "fin", "how the client closes: fin or rst")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:0", "address the listener binds")
	asJSON := flag.Bool("json", false, "print the result as one JSON object")
	flag.Parse()
	if flag.NArg() > 0 || o.conns < 1 || o.duration <= 0 || o.payload < 0 || (o.close != "fin" && o.close != "rst") {
		fmt.Fprintln(os.Stderr, "connstorm: usage: connstorm [-c N] [-d DURATION] [-payload BYTES] [-close fin|rst] [-addr HOST:PORT] [-json]")
		os.Exit(2)
	}
	r, err := storm(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "connstorm: %v\n", err)
		os.Exit(1)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	fmt.Printf("%d connections in %.1fs: %.0f conn/s, %d failures (%s)\n", r.Conns, r.Seconds, r.PerSecond, r.Failures, r.Port)
}
