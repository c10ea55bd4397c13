// SPDX-License-Identifier: Apache-2.0

// Package containers maps a cgroup (v2) to the container that runs in it:
// the runtime and container id from the cgroup's path, by the runtimes'
// own naming, and the name, image and Kubernetes pod from the runtime's
// state on disk. Nothing here asks a runtime's API, so it needs no
// runtime client and never blocks on one.
package containers

import (
	"strings"
)

// Runtimes, as reported in Container.Runtime.
const (
	Docker     = "docker"
	Podman     = "podman"
	Containerd = "containerd"
	CRIO       = "cri-o"
	// Kubernetes: a kubelet's cgroupfs layout (/kubepods/.../pod<uid>/<id>),
	// which does not say which runtime; the runtime's state, when found,
	// does.
	Kubernetes = "kubernetes"
)

// Container is what is known of one container. Only ID and Runtime are
// always set.
type Container struct {
	ID        string `json:"id"` // 64 hex digits
	Runtime   string `json:"runtime"`
	Name      string `json:"name,omitempty"`
	Image     string `json:"image,omitempty"`
	Pod       string `json:"pod,omitempty"`       // Kubernetes pod name
	Namespace string `json:"namespace,omitempty"` // Kubernetes namespace
}

// ShortID is the first 12 hex digits of the id, as docker ps shows it.
func (c *Container) ShortID() string {
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}

// Label is the container's name, or its short id when it has none.
func (c *Container) Label() string {
	if c.Name != "" {
		return c.Name
	}
	return c.ShortID()
}

// FromPath finds the container a cgroup path belongs to: the innermost
// path element that a runtime names after a container. A container's own
// sub-cgroups (systemd inside it: libpod-ID.scope/container, init.scope)
// belong to it. The runtimes' monitor processes (conmon) are not
// containers.
//
//	/system.slice/docker-ID.scope                  docker, systemd driver
//	/docker/ID                                     docker, cgroupfs driver
//	/machine.slice/libpod-ID.scope, /libpod_parent/libpod-ID   podman
//	/system.slice/cri-containerd-ID.scope          containerd (CRI)
//	/system.slice/crio-ID.scope                    CRI-O
//	/kubepods.slice/.../cri-containerd-ID.scope    Kubernetes, systemd driver
//	/kubepods/besteffort/pod<uid>/ID               Kubernetes, cgroupfs driver
func FromPath(path string) (runtime, id string, ok bool) {
	elems := strings.Split(strings.Trim(path, "/"), "/")
	for i := len(elems) - 1; i >= 0; i-- {
		e := elems[i]
		name := strings.TrimSuffix(e, ".scope")
		switch {
		case strings.HasPrefix(name, "docker-"):
			runtime, id = Docker, name[len("docker-"):]
		case strings.HasPrefix(name, "libpod-conmon-"), strings.HasPrefix(name, "crio-conmon-"):
			continue
		case strings.HasPrefix(name, "libpod-"):
			runtime, id = Podman, name[len("libpod-"):]
		case strings.HasPrefix(name, "cri-containerd-"):
			runtime, id = Containerd, name[len("cri-containerd-"):]
		case strings.HasPrefix(name, "crio-"):
			runtime, id = CRIO, name[len("crio-"):]
		case i > 0 && elems[i-1] == "docker":
			runtime, id = Docker, e
		case i > 0 && strings.HasPrefix(elems[i-1], "pod") && underKubepods(elems[:i]):
			runtime, id = Kubernetes, e
		default:
			continue
		}
		if isID(id) {
			return runtime, id, true
		}
	}
	return "", "", false
}

func underKubepods(elems []string) bool {
	for _, e := range elems {
		if e == "kubepods" || strings.HasPrefix(e, "kubepods.") || strings.HasPrefix(e, "kubepods-") {
			return true
		}
	}
	return false
}

// isID: a container id is 64 lowercase hex digits.
func isID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
