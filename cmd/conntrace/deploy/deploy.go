// SPDX-License-Identifier: Apache-2.0

// Package deploy holds what `conntrace deploy` prints to run `conntrace
// serve` on a fleet: a Kubernetes manifest, a systemd unit, Prometheus
// alerting rules and a Grafana dashboard. The files beside this one are
// the sources, embedded; README.md explains them.
package deploy

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/template"
)

var (
	//go:embed kubernetes.yaml.tmpl
	kubernetesTmpl string
	//go:embed conntrace.service.tmpl
	systemdTmpl string
	// Rules are Prometheus alerting rules on serve's metrics.
	//go:embed rules.yaml
	Rules []byte
	// Dashboard is a Grafana dashboard of serve's metrics.
	//go:embed dashboard.json
	Dashboard []byte
)

// Kubernetes says what the manifest deploys.
type Kubernetes struct {
	Namespace  string // a DNS label
	Image      string // the conntrace image (make image builds one)
	Port       uint16 // serve's port on each node
	PodMonitor bool   // add a PodMonitor for the Prometheus operator
}

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	// imageRef is what an image reference is made of (registry/path:tag
	// or @sha256:digest); it leaves nothing that YAML would read as more.
	// The template quotes both, so that YAML keeps "yes" or "0x10" a
	// string, not a boolean or a number.
	imageRef = regexp.MustCompile(`^[a-z0-9][a-zA-Z0-9._/:@-]{0,254}$`)
)

// Check says what is wrong with k, in the words of its flags.
func (k Kubernetes) Check() error {
	if !dnsLabel.MatchString(k.Namespace) {
		return fmt.Errorf("--namespace %q: want a DNS label: lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit", k.Namespace)
	}
	if !imageRef.MatchString(k.Image) {
		return fmt.Errorf("--image %q: want an image reference such as registry.example.com/conntrace:v1", k.Image)
	}
	if k.Port == 0 {
		return fmt.Errorf("--port 0: want a port number from 1 to 65535")
	}
	return nil
}

// WriteKubernetes writes the manifest: Namespace, ServiceAccount,
// DaemonSet, and the PodMonitor when asked for.
func WriteKubernetes(w io.Writer, k Kubernetes) error {
	if err := k.Check(); err != nil {
		return err
	}
	return template.Must(template.New("kubernetes").Parse(kubernetesTmpl)).Execute(w, k)
}

// Systemd says what the unit runs.
type Systemd struct {
	Binary       string   // the conntrace executable, an absolute path
	Listen       string   // serve's --listen
	Capabilities []string // CapabilityBoundingSet: CAP_ names
}

var (
	// plainPath is an absolute path systemd takes as is, unquoted.
	plainPath = regexp.MustCompile(`^/[A-Za-z0-9._/+-]*$`)
	// listenAddr is serve's --listen as one word: host:port or :port.
	listenAddr = regexp.MustCompile(`^[A-Za-z0-9.:\[\]]*:[0-9]{1,5}$`)
)

// Check says what is wrong with s, in the words of its flags.
func (s Systemd) Check() error {
	if err := CheckBinary(s.Binary); err != nil {
		return err
	}
	if !listenAddr.MatchString(s.Listen) {
		return fmt.Errorf("--listen %q: want host:port or :port", s.Listen)
	}
	return nil
}

// CheckBinary says what is wrong with path as the unit's ExecStart.
func CheckBinary(path string) error {
	if !plainPath.MatchString(path) || strings.Contains(path, "/../") || strings.HasSuffix(path, "/..") {
		return fmt.Errorf("--binary %q: want an absolute path of letters, digits and ._+-/ (no spaces, no ..)", path)
	}
	return nil
}

// WriteSystemd writes the unit file.
func WriteSystemd(w io.Writer, s Systemd) error {
	if err := s.Check(); err != nil {
		return err
	}
	return template.Must(template.New("systemd").Parse(systemdTmpl)).Execute(w, struct {
		Binary, Listen, Capabilities string
	}{s.Binary, s.Listen, strings.Join(s.Capabilities, " ")})
}

// DashboardQueries are the PromQL queries of Dashboard's panels, as
// written (with Grafana's $instance and $__rate_interval).
func DashboardQueries() ([]string, error) {
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(Dashboard, &d); err != nil {
		return nil, fmt.Errorf("dashboard.json: %w", err)
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			exprs = append(exprs, t.Expr)
		}
	}
	return exprs, nil
}
