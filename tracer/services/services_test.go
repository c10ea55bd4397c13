// SPDX-License-Identifier: Apache-2.0

package services

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		proto string
		port  uint16
		want  string
	}{
		{"tcp", 443, "https"}, {"tcp", 5432, "postgresql"}, {"tcp", 8080, "http-alt"},
		{"udp", 53, "domain"}, {"udp", 5353, "mdns"}, {"tcp", 0, ""},
	} {
		if got := Lookup(tc.proto, tc.port); got != tc.want {
			t.Errorf("Lookup(%s, %d) = %q, want %q", tc.proto, tc.port, got, tc.want)
		}
	}
}

func TestParseEtcServices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "services")
	os.WriteFile(path, []byte("# comment\nfoo\t\t12345/tcp  foo-alias # x\nbar 12345/udp\nbad line\nbaz 99999/tcp\n"), 0o644)
	m := parse(path)
	if m[key{"tcp", 12345}] != "foo" || m[key{"udp", 12345}] != "bar" || len(m) != 2 {
		t.Errorf("parse: %v", m)
	}
	if len(parse("/nonexistent")) != 0 {
		t.Error("missing file should give an empty map")
	}
}

func TestClass(t *testing.T) {
	for _, tc := range []struct {
		port uint16
		want string
	}{{22, "well-known"}, {1023, "well-known"}, {1024, "registered"}, {32768, "ephemeral"},
		{60999, "ephemeral"}, {31000, "registered"}, {61000, "dynamic"}} {
		if got := Class(tc.port, 32768, 60999); got != tc.want {
			t.Errorf("Class(%d) = %q, want %q", tc.port, got, tc.want)
		}
	}
}
