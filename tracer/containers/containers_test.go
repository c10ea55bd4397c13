// SPDX-License-Identifier: Apache-2.0

package containers

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const (
	id1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	id2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// Paths as the runtimes and kubelets make them (systemd and cgroupfs
// drivers), and paths that are no container's.
func TestFromPath(t *testing.T) {
	for _, c := range []struct{ path, runtime, id string }{
		{"/system.slice/docker-" + id1 + ".scope", Docker, id1},
		{"/docker/" + id1, Docker, id1},
		{"/machine.slice/libpod-" + id1 + ".scope", Podman, id1},
		{"/machine.slice/libpod-" + id1 + ".scope/container", Podman, id1},
		{"/libpod_parent/libpod-" + id1, Podman, id1},
		{"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + id1 + ".scope", Podman, id1},
		{"/system.slice/cri-containerd-" + id1 + ".scope", Containerd, id1},
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/cri-containerd-" + id1 + ".scope", Containerd, id1},
		{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901.slice/crio-" + id1 + ".scope", CRIO, id1},
		{"/kubepods/besteffort/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/" + id1, Kubernetes, id1},
		{"/kubepods/pod1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901/" + id1, Kubernetes, id1},
		{"/system.slice/docker-" + id1 + ".scope/init.scope", Docker, id1},
		// docker in docker: the innermost container.
		{"/docker/" + id2 + "/docker/" + id1, Docker, id1},
		{"/", "", ""},
		{"/system.slice/ssh.service", "", ""},
		{"/user.slice/user-0.slice/session-3.scope", "", ""},
		{"/machine.slice/libpod-conmon-" + id1 + ".scope", "", ""},
		{"/system.slice/crio-conmon-" + id1 + ".scope", "", ""},
		{"/system.slice/docker-" + id1[:12] + ".scope", "", ""},
		{"/docker/not-an-id", "", ""},
		{"/system.slice/docker-" + strings.ToUpper(id1) + ".scope", "", ""},
		{"/mypod/" + id1, "", ""},
	} {
		rt, id, ok := FromPath(c.path)
		if rt != c.runtime || id != c.id || ok != (c.id != "") {
			t.Errorf("FromPath(%q) = %q, %q, %v; want %q, %q", c.path, rt, id, ok, c.runtime, c.id)
		}
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func testState(t *testing.T) State {
	d := t.TempDir()
	return State{Docker: d + "/docker", PodmanLib: d + "/lib", StorageRun: d + "/run", Containerd: d + "/containerd", Proc: d + "/proc"}
}

// The runtimes' state files, trimmed to the fields that matter, as they
// write them: docker's config.v2.json, containerd's CRI bundle and
// CRI-O's, podman's conmon command line.
func TestDescribe(t *testing.T) {
	s := testState(t)
	write(t, s.Docker+"/"+id1+"/config.v2.json",
		`{"ID":"`+id1+`","Name":"/web","Config":{"Hostname":"0123456789ab","Image":"nginx:1.27","Labels":{"maintainer":"x"}},"State":{"Running":true}}`)
	c := s.Describe(Docker, id1)
	if *c != (Container{ID: id1, Runtime: Docker, Name: "web", Image: "nginx:1.27"}) {
		t.Errorf("docker: %+v", c)
	}

	write(t, s.Containerd+"/k8s.io/"+id1+"/config.json", `{"ociVersion":"1.1.0","annotations":{
		"io.kubernetes.cri.container-name":"api","io.kubernetes.cri.container-type":"container",
		"io.kubernetes.cri.image-name":"registry.example/api:v2","io.kubernetes.cri.sandbox-id":"`+id2+`",
		"io.kubernetes.cri.sandbox-name":"api-7d4b9c-xk2lp","io.kubernetes.cri.sandbox-namespace":"shop",
		"io.kubernetes.cri.sandbox-uid":"1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901"}}`)
	want := Container{ID: id1, Runtime: Containerd, Name: "api", Image: "registry.example/api:v2", Pod: "api-7d4b9c-xk2lp", Namespace: "shop"}
	if c := s.Describe(Containerd, id1); *c != want {
		t.Errorf("containerd: %+v", c)
	}
	// The kubelet's cgroupfs layout says no runtime; the bundle does.
	if c := s.Describe(Kubernetes, id1); *c != want {
		t.Errorf("kubepods (containerd): %+v", c)
	}
	// The pod's sandbox (pause) container: the pod, no container name.
	write(t, s.Containerd+"/k8s.io/"+id2+"/config.json", `{"annotations":{"io.kubernetes.cri.container-type":"sandbox",
		"io.kubernetes.cri.sandbox-name":"api-7d4b9c-xk2lp","io.kubernetes.cri.sandbox-namespace":"shop"}}`)
	if c := s.Describe(Containerd, id2); *c != (Container{ID: id2, Runtime: Containerd, Pod: "api-7d4b9c-xk2lp", Namespace: "shop"}) {
		t.Errorf("containerd sandbox: %+v", c)
	}

	s = testState(t)
	write(t, s.StorageRun+"/"+id1+"/userdata/config.json", `{"annotations":{"io.container.manager":"cri-o",
		"io.kubernetes.container.name":"db","io.kubernetes.cri-o.ContainerType":"container",
		"io.kubernetes.cri-o.ImageName":"docker.io/library/postgres:16","io.kubernetes.pod.name":"db-0",
		"io.kubernetes.pod.namespace":"data"}}`)
	want = Container{ID: id1, Runtime: CRIO, Name: "db", Image: "docker.io/library/postgres:16", Pod: "db-0", Namespace: "data"}
	if c := s.Describe(CRIO, id1); *c != want {
		t.Errorf("cri-o: %+v", c)
	}
	if c := s.Describe(Kubernetes, id1); *c != want {
		t.Errorf("kubepods (cri-o): %+v", c)
	}

	s = testState(t)
	write(t, s.StorageRun+"/"+id1+"/userdata/conmon.pid", "4242\n")
	write(t, s.Proc+"/4242/cmdline", strings.Join([]string{"/usr/bin/conmon", "--api-version", "1", "-c", id1, "-u", id1,
		"-r", "/usr/bin/runc", "-n", "web", "--exit-dir", "/run/libpod/exits", ""}, "\x00"))
	if c := s.Describe(Podman, id1); *c != (Container{ID: id1, Runtime: Podman, Name: "web"}) {
		t.Errorf("podman: %+v", c)
	}
	// Made from an image: containers/storage lists it, with podman's
	// metadata.
	write(t, s.PodmanLib+"/containers.json", `[{"id":"`+id2+`","names":["other"],"image":"8780","metadata":"{}"},
		{"id":"`+id1+`","names":["web"],"image":"878090252ded","layer":"efa0","metadata":"{\"image-name\":\"localhost/x:1\",\"image-id\":\"878090252ded\",\"name\":\"web\",\"created-at\":1796264532}"}]`)
	if c := s.Describe(Podman, id1); *c != (Container{ID: id1, Runtime: Podman, Name: "web", Image: "localhost/x:1"}) {
		t.Errorf("podman from an image: %+v", c)
	}
	os.Remove(s.PodmanLib + "/containers.json")
	// A reused pid: the process is some other container's conmon.
	if c := s.Describe(Podman, id2); *c != (Container{ID: id2, Runtime: Podman}) {
		t.Errorf("podman, no state: %+v", c)
	}
	write(t, s.StorageRun+"/"+id2+"/userdata/conmon.pid", "4242")
	if c := s.Describe(Podman, id2); c.Name != "" {
		t.Errorf("podman, reused pid: %+v", c)
	}

	// Missing, broken or hostile state: the id and runtime, nothing else.
	s = testState(t)
	write(t, s.Docker+"/"+id1+"/config.v2.json", `{"Name": 42`)
	if c := s.Describe(Docker, id1); *c != (Container{ID: id1, Runtime: Docker}) {
		t.Errorf("broken docker state: %+v", c)
	}
	if c := s.Describe(Docker, "../../etc"); *c != (Container{ID: "../../etc", Runtime: Docker}) {
		t.Errorf("not an id: %+v", c)
	}
}

func TestCgroup2Mount(t *testing.T) {
	for _, c := range []struct{ mountinfo, want string }{
		{"35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup"},
		// Hybrid: v1 controllers, v2 at unified.
		{"34 24 0:29 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n" +
			"35 34 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n" +
			"36 34 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n", "/sys/fs/cgroup/unified"},
		// A bind mount of a sub-cgroup does not resolve ids; a space escaped.
		{"40 24 0:30 /system.slice /mnt/x rw - cgroup2 cgroup2 rw\n" +
			"41 24 0:30 / /mnt/cg\\040v2 rw - cgroup2 cgroup2 rw\n", "/mnt/cg v2"},
	} {
		f := filepath.Join(t.TempDir(), "mountinfo")
		write(t, f, c.mountinfo)
		if got, err := cgroup2Mount(f); got != c.want || err != nil {
			t.Errorf("cgroup2Mount(%q) = %q, %v; want %q", c.mountinfo, got, err, c.want)
		}
	}
	f := filepath.Join(t.TempDir(), "mountinfo")
	write(t, f, "36 34 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n")
	if _, err := cgroup2Mount(f); err == nil || err.Error() != "cgroup v2 is not mounted" {
		t.Errorf("v1 only: %v", err)
	}
}

// The walk that finds a cgroup by its inode where the kernel refuses file
// handles, on a plain directory tree.
func TestWalk(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b c")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := newResolver(root, State{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.walk(st.Sys().(*syscall.Stat_t).Ino); p != "/a/b c" || err != nil {
		t.Errorf("walk: %q, %v", p, err)
	}
	if p, err := r.walk(1 << 62); err == nil {
		t.Errorf("walk found %q for no such inode", p)
	}
}

// /proc/PID/cgroup on a hybrid host, a v1-only one and a v2-only one.
func TestContainerPath(t *testing.T) {
	for _, c := range []struct{ procCgroup, want string }{
		{"12:pids:/docker/" + id1 + "\n11:memory:/docker/" + id1 + "\n1:name=systemd:/docker/" + id1 + "\n0::/\n", "/docker/" + id1},
		{"4:memory:/kubepods/besteffort/pod1b2c/" + id1 + "\n1:name=systemd:/kubepods/besteffort/pod1b2c/" + id1 + "\n", "/kubepods/besteffort/pod1b2c/" + id1},
		{"0::/system.slice/docker-" + id1 + ".scope\n", "/system.slice/docker-" + id1 + ".scope"},
		{"0::/user.slice/user-0.slice/session-1.scope\n", "/user.slice/user-0.slice/session-1.scope"},
		{"1:name=systemd:/user.slice\n", "/"},
		{"", "/"},
	} {
		if got := containerPath(c.procCgroup); got != c.want {
			t.Errorf("containerPath(%q) = %q, want %q", c.procCgroup, got, c.want)
		}
	}
	s := testState(t)
	write(t, s.Proc+"/42/cgroup", "3:cpu:/docker/"+id1+"\n")
	if c := OfPID(42, s); c == nil || *c != (Container{ID: id1, Runtime: Docker}) {
		t.Errorf("OfPID: %+v", c)
	}
	if c := OfPID(43, s); c != nil {
		t.Errorf("OfPID of no process: %+v", c)
	}
}
