// SPDX-License-Identifier: Apache-2.0

package dns

import (
	"fmt"
	"strings"
)

// Filter matches names against patterns: an exact name ("api.example.com")
// or every name below a domain ("*.example.com": a.example.com,
// b.a.example.com, not example.com itself). Case and a final dot do not
// matter.
type Filter struct {
	exact    [][]byte
	suffixes [][]byte // ".example.com"
}

// NewFilter checks the patterns and makes their filter.
func NewFilter(patterns []string) (*Filter, error) {
	f := &Filter{}
	for _, p := range patterns {
		name := strings.TrimSuffix(p, ".")
		wild := strings.HasPrefix(name, "*.")
		if wild {
			name = name[2:]
		}
		if err := checkName(name); err != nil {
			return nil, fmt.Errorf("%q: %v: want a name (api.example.com) or *.domain (*.example.com)", p, err)
		}
		if wild {
			f.suffixes = append(f.suffixes, []byte("."+name))
		} else {
			f.exact = append(f.exact, []byte(name))
		}
	}
	return f, nil
}

// checkName accepts what DNS names are made of: labels of letters,
// digits, '-' and '_', 1 to 63 bytes each, 253 in all.
func checkName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%d bytes", len(name))
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("a label of %d bytes", len(label))
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q in a label", c)
			}
		}
	}
	return nil
}

// Match reports whether name (with or without its final dot) matches a
// pattern.
func (f *Filter) Match(name []byte) bool { return match(f, name) }

// MatchString is Match of a string.
func (f *Filter) MatchString(name string) bool { return match(f, name) }

func match[S ~string | ~[]byte](f *Filter, name S) bool {
	if n := len(name); n > 1 && name[n-1] == '.' {
		name = name[:n-1]
	}
	for _, e := range f.exact {
		if equalFold(name, e) {
			return true
		}
	}
	for _, s := range f.suffixes {
		if len(name) > len(s) && equalFold(name[len(name)-len(s):], s) {
			return true
		}
	}
	return false
}

// equalFold is bytes.EqualFold for ASCII, of a string or bytes.
func equalFold[S ~string | ~[]byte](a S, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(b) {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
