// SPDX-License-Identifier: Apache-2.0

// Command release writes conntrace's release files (make release): for
// amd64 and arm64 a tarball and a Debian package, and SHA256SUMS. See
// README.md beside this file.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

func main() {
	var c config
	flag.StringVar(&c.out, "o", "dist", "write the files into `DIR` (emptied first)")
	flag.StringVar(&c.version, "version", "dev", "the version (make release: git describe)")
	flag.StringVar(&c.commit, "commit", "", "the commit's hash")
	date := flag.String("date", "", "the build date, RFC 3339 (make release: SOURCE_DATE_EPOCH's, else now)")
	arches := flag.String("arch", "amd64,arm64", "the architectures, comma-separated")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "release: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	c.arches = strings.Split(*arches, ",")
	c.date = time.Now().UTC().Truncate(time.Second)
	if *date != "" {
		d, err := time.Parse(time.RFC3339, *date)
		if err != nil {
			fmt.Fprintf(os.Stderr, "release: -date %q: want RFC 3339 (2026-12-03T09:00:00Z)\n", *date)
			os.Exit(2)
		}
		c.date = d.UTC()
	}
	files, err := release(c)
	if err != nil {
		fmt.Fprintf(os.Stderr, "release: %v\n", err)
		os.Exit(1)
	}
	for _, f := range files {
		fmt.Println(f)
	}
}
