// SPDX-License-Identifier: Apache-2.0

package containers

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// State says where the runtimes keep what describes a container. The
// defaults are the runtimes' own (rootful); tests point them elsewhere.
type State struct {
	Docker     string // DIR/ID/config.v2.json
	PodmanLib  string // DIR/ID/userdata/config.json (the OCI bundle)
	StorageRun string // DIR/ID/userdata: podman's conmon.pid, CRI-O's config.json
	Containerd string // DIR/NAMESPACE/ID/config.json (the OCI bundle)
	Proc       string // /proc, for conmon's command line
}

// DefaultState is where the runtimes keep their state on a host.
func DefaultState() State {
	return State{
		Docker:     "/var/lib/docker/containers",
		PodmanLib:  "/var/lib/containers/storage/overlay-containers",
		StorageRun: "/run/containers/storage/overlay-containers",
		Containerd: "/run/containerd/io.containerd.runtime.v2.task",
		Proc:       "/proc",
	}
}

// Found lists the runtimes whose state directory exists here (podman and
// CRI-O share containers/storage).
func (s State) Found() []string {
	var found []string
	for _, d := range []struct{ dir, runtime string }{
		{s.Docker, Docker}, {s.PodmanLib, Podman + "/" + CRIO}, {s.StorageRun, Podman + "/" + CRIO}, {s.Containerd, Containerd},
	} {
		if st, err := os.Stat(d.dir); err == nil && st.IsDir() && !slices.Contains(found, d.runtime) {
			found = append(found, d.runtime)
		}
	}
	return found
}

// maxStateFile bounds what is read of one state file.
const maxStateFile = 4 << 20

// Describe is the container runtime/id found in a cgroup path, with what
// its runtime's state says of it (nothing more when that is not found).
// id must be a container id (FromPath checked it): it goes into paths.
func (s State) Describe(runtime, id string) *Container {
	c := &Container{ID: id, Runtime: runtime}
	if !isID(id) {
		return c
	}
	switch runtime {
	case Docker:
		s.docker(c)
	case Podman:
		s.annotations(c, filepath.Join(s.PodmanLib, id, "userdata", "config.json"))
		s.podmanStorage(c)
		if c.Name == "" {
			c.Name = s.conmonName(id)
		}
	case CRIO:
		s.annotations(c, filepath.Join(s.StorageRun, id, "userdata", "config.json"))
	case Containerd:
		s.containerd(c)
	case Kubernetes:
		// The kubelet's cgroupfs layout: the runtime is whichever has it.
		if s.containerd(c) {
			c.Runtime = Containerd
		} else if s.annotations(c, filepath.Join(s.StorageRun, id, "userdata", "config.json")) {
			c.Runtime = CRIO
		}
	}
	return c
}

func readState(path string) ([]byte, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile))
	return b, err == nil
}

// annotations fills c from an OCI bundle's config.json: the Kubernetes
// annotations that containerd's CRI plugin and CRI-O write. It says
// whether the file was there.
func (s State) annotations(c *Container, path string) bool {
	b, ok := readState(path)
	if !ok {
		return false
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(b, &spec) != nil {
		return true
	}
	a := spec.Annotations
	set := func(dst *string, keys ...string) {
		for _, k := range keys {
			if v := a[k]; v != "" {
				*dst = v
				return
			}
		}
	}
	if a["io.kubernetes.cri.container-type"] != "sandbox" && a["io.kubernetes.cri-o.ContainerType"] != "sandbox" {
		set(&c.Name, "io.kubernetes.cri.container-name", "io.kubernetes.container.name")
	}
	set(&c.Pod, "io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name")
	set(&c.Namespace, "io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace")
	set(&c.Image, "io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName")
	return true
}

// containerd finds the container's bundle in any containerd namespace
// (k8s.io for Kubernetes, moby for docker, default for nerdctl/ctr).
func (s State) containerd(c *Container) bool {
	nss, err := os.ReadDir(s.Containerd)
	if err != nil {
		return false
	}
	for _, ns := range nss {
		if s.annotations(c, filepath.Join(s.Containerd, ns.Name(), c.ID, "config.json")) {
			return true
		}
	}
	return false
}

// docker reads the container's config.v2.json: its name and image, and
// the Kubernetes labels a dockershim kubelet set.
func (s State) docker(c *Container) {
	b, ok := readState(filepath.Join(s.Docker, c.ID, "config.v2.json"))
	if !ok {
		return
	}
	var cfg struct {
		Name   string
		Config struct {
			Image  string
			Labels map[string]string
		}
	}
	if json.Unmarshal(b, &cfg) != nil {
		return
	}
	c.Name = strings.TrimPrefix(cfg.Name, "/")
	c.Image = cfg.Config.Image
	if l := cfg.Config.Labels; l != nil {
		if v := l["io.kubernetes.container.name"]; v != "" {
			c.Name = v
		}
		c.Pod = l["io.kubernetes.pod.name"]
		c.Namespace = l["io.kubernetes.pod.namespace"]
	}
}

// podmanStorage fills c from containers/storage's list of containers,
// where podman keeps those made from an image: their names, and in
// podman's metadata the image's name. (One run from a root file system,
// --rootfs, is not there.)
func (s State) podmanStorage(c *Container) {
	b, ok := readState(filepath.Join(s.PodmanLib, "containers.json"))
	if !ok {
		return
	}
	var list []struct {
		ID       string   `json:"id"`
		Names    []string `json:"names"`
		Metadata string   `json:"metadata"`
	}
	if json.Unmarshal(b, &list) != nil {
		return
	}
	for _, e := range list {
		if e.ID != c.ID {
			continue
		}
		var md struct {
			ImageName string `json:"image-name"`
			Name      string `json:"name"`
		}
		json.Unmarshal([]byte(e.Metadata), &md)
		if c.Name == "" && len(e.Names) > 0 {
			c.Name = e.Names[0]
		}
		if c.Name == "" {
			c.Name = md.Name
		}
		if c.Image == "" {
			c.Image = md.ImageName
		}
		return
	}
}

// conmonName is a podman container's name, from the command line of its
// conmon (podman keeps names in its own database; conmon is started with
// "-c ID ... -n NAME").
func (s State) conmonName(id string) string {
	b, ok := readState(filepath.Join(s.StorageRun, id, "userdata", "conmon.pid"))
	if !ok {
		return ""
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return ""
	}
	cmd, ok := readState(filepath.Join(s.Proc, strconv.Itoa(pid), "cmdline"))
	if !ok {
		return ""
	}
	return conmonArg(bytes.Split(bytes.TrimRight(cmd, "\x00"), []byte{0}), id)
}

// conmonArg is the -n/--name argument of a conmon command line that is
// for container id (a reused pid is some other process).
func conmonArg(args [][]byte, id string) string {
	var name, cid string
	for i := 0; i+1 < len(args); i++ {
		switch string(args[i]) {
		case "-n", "--name":
			name = string(args[i+1])
		case "-c", "--cid":
			cid = string(args[i+1])
		}
	}
	if cid != id {
		return ""
	}
	return name
}
