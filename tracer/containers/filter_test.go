// SPDX-License-Identifier: Apache-2.0

package containers

import (
	"strings"
	"testing"
)

func TestContainerSelectors(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	f := &Filter{want: []string{"web", "0123456789ab", "fedc"}}
	for _, c := range []struct {
		ctr  Container
		want bool
	}{
		{Container{ID: strings.Repeat("9", 64), Name: "web"}, true},
		{Container{ID: id}, true},                                // by its 12-digit prefix
		{Container{ID: "fedc" + strings.Repeat("0", 60)}, false}, // 4 digits are a name, not an id
		{Container{ID: strings.Repeat("9", 64), Name: "fedc"}, true},
		{Container{ID: strings.Repeat("9", 64), Name: "webserver"}, false},
		{Container{ID: strings.Repeat("9", 64)}, false},
	} {
		if got := f.wants(&c.ctr); got != c.want {
			t.Errorf("wants(%+v) = %v", c.ctr, got)
		}
	}
}

// With no runtime's state on the host, --container says once that it can
// match ids only.
func TestContainerFilterWithoutRuntimes(t *testing.T) {
	r, err := NewResolver(State{})
	if err != nil {
		t.Fatalf("no cgroup v2 here: %v", err)
	}
	defer r.Close()
	dir := t.TempDir()
	f, err := NewFilter(r, State{Docker: dir + "/a", PodmanLib: dir + "/b", StorageRun: dir + "/c", Containerd: dir + "/d"}, nil, []string{"web"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if w := f.Warning(); !strings.Contains(w, "no container runtime's state found") {
		t.Errorf("warning %q", w)
	}
}
