// SPDX-License-Identifier: Apache-2.0

package output

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/conntrace/conntrace/tracer/containers"
)

const ctrID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

var (
	podCgroup = &containers.Cgroup{ID: 4711,
		Path: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c.slice/cri-containerd-" + ctrID + ".scope",
		Container: &containers.Container{ID: ctrID, Runtime: containers.Containerd, Name: "api",
			Image: "registry.example/api:v2", Pod: "api-7d4b9c-xk2lp", Namespace: "shop"}}
	serviceCgroup = &containers.Cgroup{ID: 88, Path: "/system.slice/nginx.service"}
	rootCgroup    = &containers.Cgroup{ID: 1, Path: "/"}
)

// The contract's cgroup and container fields, after uid; none for a
// process in the root cgroup.
func TestJSONContainer(t *testing.T) {
	for _, tc := range []struct {
		cg   *containers.Cgroup
		want string
	}{
		{podCgroup, `"uid":1000,"cgroup_id":4711,"cgroup":"` + podCgroup.Path + `","container":{"id":"` + ctrID +
			`","runtime":"containerd","name":"api","image":"registry.example/api:v2","pod":"api-7d4b9c-xk2lp","namespace":"shop"},"proto"`},
		{&containers.Cgroup{ID: 4711, Path: "/docker/" + ctrID, Container: &containers.Container{ID: ctrID, Runtime: containers.Docker}},
			`"uid":1000,"cgroup_id":4711,"cgroup":"/docker/` + ctrID + `","container":{"id":"` + ctrID + `","runtime":"docker"},"proto"`},
		{serviceCgroup, `"uid":1000,"cgroup_id":4711,"cgroup":"/system.slice/nginx.service","proto"`},
		// Gone before it was looked up: the id alone.
		{&containers.Cgroup{ID: 4711}, `"uid":1000,"cgroup_id":4711,"proto"`},
		{rootCgroup, `"uid":1000,"proto"`},
		{nil, `"uid":1000,"proto"`},
	} {
		ev := connectEv
		ev.CgroupID, ev.Cgroup = 4711, tc.cg
		if got := string(AppendJSON(nil, &ev)); !strings.Contains(got, tc.want) {
			t.Errorf("got %s\nwant it to contain %s", got, tc.want)
		}
	}
}

// Container names and cgroup paths are chosen by whoever starts the
// container: escaped like process names.
func TestContainerHostileNames(t *testing.T) {
	for _, name := range hostile {
		ev := connectEv
		ev.CgroupID = 7
		ev.Cgroup = &containers.Cgroup{ID: 7, Path: "/x/" + name, Container: &containers.Container{ID: ctrID, Runtime: containers.Podman, Name: name}}
		line := AppendJSON(nil, &ev)
		var v struct {
			Cgroup    string
			Container struct{ Name string }
		}
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", name, line, err)
		}
		text := AppendText(nil, &ev)
		for _, c := range text[:len(text)-1] {
			if c < ' ' || c >= 0x7f {
				t.Fatalf("%q: text line has byte %#x: %q", name, c, text)
			}
		}
	}
}

func TestTextContainer(t *testing.T) {
	ev := connectEv
	ev.Cgroup = podCgroup
	if got := string(AppendText(nil, &ev)); !strings.Contains(got, " uid=1000 container=api pod=shop/api-7d4b9c-xk2lp ") {
		t.Errorf("%q", got)
	}
	// No name: the short id, as docker ps shows it.
	ev.Cgroup = &containers.Cgroup{ID: 7, Path: "/docker/" + ctrID, Container: &containers.Container{ID: ctrID, Runtime: containers.Docker}}
	if got := string(AppendText(nil, &ev)); !strings.Contains(got, " container=0123456789ab ") {
		t.Errorf("%q", got)
	}
	ev.Cgroup = serviceCgroup
	if got := string(AppendText(nil, &ev)); strings.Contains(got, "container=") {
		t.Errorf("%q", got)
	}
}

func TestContainerFormattingDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 1024)
	ev := closeEv
	ev.CgroupID, ev.Cgroup = 4711, podCgroup
	if n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], &ev) }); n != 0 {
		t.Errorf("AppendJSON allocates %v", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = AppendText(buf[:0], &ev) }); n != 0 {
		t.Errorf("AppendText allocates %v", n)
	}
}
