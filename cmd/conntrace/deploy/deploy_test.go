// SPDX-License-Identifier: Apache-2.0

package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestKubernetesManifest decodes every object of the manifest strictly
// into the Kubernetes API's own types (an unknown or misplaced field
// fails) and checks what makes the DaemonSet work on a node.
func TestKubernetesManifest(t *testing.T) {
	for _, podMonitor := range []bool{false, true} {
		var b bytes.Buffer
		k := Kubernetes{Namespace: "obs", Image: "registry.example.com/conntrace:v1", Port: 10843, PodMonitor: podMonitor}
		if err := WriteKubernetes(&b, k); err != nil {
			t.Fatal(err)
		}
		docs := strings.Split(b.String(), "\n---\n")
		if want := 3 + map[bool]int{true: 1}[podMonitor]; len(docs) != want {
			t.Fatalf("podmonitor %v: %d objects, want %d", podMonitor, len(docs), want)
		}
		var ns corev1.Namespace
		var sa corev1.ServiceAccount
		var ds appsv1.DaemonSet
		for i, obj := range []any{&ns, &sa, &ds} {
			if err := yaml.UnmarshalStrict([]byte(docs[i]), obj); err != nil {
				t.Fatalf("object %d: %v\n%s", i, err, docs[i])
			}
		}
		if ns.Kind != "Namespace" || ns.Name != "obs" || sa.Kind != "ServiceAccount" || sa.Namespace != "obs" ||
			sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Errorf("namespace %+v, service account %+v", ns.ObjectMeta, sa)
		}
		checkDaemonSet(t, &ds, k)
		if podMonitor {
			var pm monitoringv1.PodMonitor
			if err := yaml.UnmarshalStrict([]byte(docs[3]), &pm); err != nil {
				t.Fatalf("PodMonitor: %v\n%s", err, docs[3])
			}
			if pm.Kind != "PodMonitor" || pm.Namespace != "obs" || pm.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "conntrace" ||
				len(pm.Spec.PodMetricsEndpoints) != 1 || *pm.Spec.PodMetricsEndpoints[0].Port != "metrics" || pm.Spec.PodMetricsEndpoints[0].Path != "/metrics" {
				t.Errorf("PodMonitor: %+v", pm)
			}
		}
	}
}

func checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet, k Kubernetes) {
	t.Helper()
	spec := &ds.Spec.Template.Spec
	if ds.Kind != "DaemonSet" || ds.Namespace != k.Namespace || ds.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != "conntrace" ||
		ds.Spec.Template.Labels["app.kubernetes.io/name"] != "conntrace" {
		t.Errorf("DaemonSet metadata or selector: %+v %+v", ds.ObjectMeta, ds.Spec.Selector)
	}
	if !spec.HostPID || !spec.HostNetwork || spec.ServiceAccountName != "conntrace" ||
		len(spec.Tolerations) != 1 || spec.Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Errorf("pod spec: hostPID %v hostNetwork %v sa %q tolerations %+v", spec.HostPID, spec.HostNetwork, spec.ServiceAccountName, spec.Tolerations)
	}
	ann := ds.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "10843" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations: %v", ann)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image != k.Image || !slices.Equal(c.Args, []string{"serve", "--listen", ":10843"}) ||
		c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Errorf("container: image %q args %q security %+v", c.Image, c.Args, c.SecurityContext)
	}
	if len(c.Ports) != 1 || c.Ports[0].Name != "metrics" || c.Ports[0].ContainerPort != 10843 {
		t.Errorf("ports: %+v", c.Ports)
	}
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "metrics" {
			t.Errorf("%s probe: %+v", name, p)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() ||
		c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: %+v", c.Resources)
	}
	// Every mount read-only, from the host path of the same name: the
	// paths the tracer reads (BTF, cgroups, the runtimes' state).
	host := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath == nil {
			t.Errorf("volume %s is not a host path", v.Name)
			continue
		}
		host[v.Name] = v.HostPath.Path
	}
	var mounted []string
	for _, m := range c.VolumeMounts {
		if !m.ReadOnly || host[m.Name] != m.MountPath {
			t.Errorf("mount %+v of host path %q: want read-only at the same path", m, host[m.Name])
		}
		mounted = append(mounted, m.MountPath)
	}
	for _, want := range []string{"/sys/kernel/btf", "/sys/fs/cgroup", "/var/lib/docker/containers", "/run/containerd", "/run/containers", "/var/lib/containers"} {
		if !slices.Contains(mounted, want) {
			t.Errorf("%s not mounted (mounts: %v)", want, mounted)
		}
	}
}

// TestKubernetesKeepsStrings: values YAML would read as a boolean, a
// null or a number stay the strings given.
func TestKubernetesKeepsStrings(t *testing.T) {
	for _, v := range []string{"yes", "null", "true", "1e3", "0x10", "010"} {
		var b bytes.Buffer
		k := Kubernetes{Namespace: v, Image: v, Port: 10843}
		if err := WriteKubernetes(&b, k); err != nil {
			t.Fatal(err)
		}
		docs := strings.Split(b.String(), "\n---\n")
		var ns corev1.Namespace
		var ds appsv1.DaemonSet
		if err := yaml.UnmarshalStrict([]byte(docs[0]), &ns); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if err := yaml.UnmarshalStrict([]byte(docs[2]), &ds); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if ns.Name != v || ds.Namespace != v || ds.Spec.Template.Spec.Containers[0].Image != v {
			t.Errorf("%q: namespace %q, DaemonSet's %q, image %q", v, ns.Name, ds.Namespace, ds.Spec.Template.Spec.Containers[0].Image)
		}
	}
}

func TestKubernetesRefusesBadValues(t *testing.T) {
	for _, k := range []Kubernetes{
		{Namespace: "Obs", Image: "a:b", Port: 1},
		{Namespace: "obs\nkind: Secret", Image: "a:b", Port: 1},
		{Namespace: strings.Repeat("a", 64), Image: "a:b", Port: 1},
		{Namespace: "obs", Image: "a:b\n  - evil", Port: 1},
		{Namespace: "obs", Image: "a b", Port: 1},
		{Namespace: "obs", Image: "", Port: 1},
		{Namespace: "obs", Image: "a:b", Port: 0},
	} {
		var b bytes.Buffer
		if err := WriteKubernetes(&b, k); err == nil || b.Len() != 0 {
			t.Errorf("%+v: error %v, %d bytes written", k, err, b.Len())
		}
	}
}

// TestSystemdUnit: systemd's own checker accepts the unit, and it bounds
// the capabilities to exactly what it is given.
func TestSystemdUnit(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	caps := []string{"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"}
	var b bytes.Buffer
	if err := WriteSystemd(&b, Systemd{Binary: exe, Listen: ":10843", Capabilities: caps}); err != nil {
		t.Fatal(err)
	}
	unit := b.String()
	for _, want := range []string{"\nExecStart=" + exe + " serve --listen :10843\n", "\nCapabilityBoundingSet=CAP_BPF CAP_PERFMON CAP_SYS_ADMIN\n",
		"\nProtectSystem=strict\n", "\nNoNewPrivileges=yes\n", "\nWantedBy=multi-user.target\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	path := filepath.Join(t.TempDir(), "conntrace.service")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze (Debian's systemd package): %v", err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	for _, s := range []Systemd{
		{Binary: "conntrace", Listen: ":1"},
		{Binary: "/usr/bin/con trace", Listen: ":1"},
		{Binary: "/usr/../bin/x", Listen: ":1"},
		{Binary: "/usr/bin/x\nExecStartPre=/bin/rm", Listen: ":1"},
		{Binary: "/usr/bin/x", Listen: ":1 --bogus"},
		{Binary: "/usr/bin/x", Listen: "localhost"},
	} {
		if err := WriteSystemd(&bytes.Buffer{}, s); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}

// TestRules: promtool accepts the rules, and its rule unit tests (series
// in, alerts out) show each alert firing when it should and not before.
func TestRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool (Debian's prometheus package; make deps installs it): %v", err)
	}
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, Rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	tests := filepath.Join(dir, "rules_test.yaml")
	if err := os.WriteFile(tests, []byte(rulesTests), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "test", "rules", tests).CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// rulesTests: a destination at 85% of its range (one at 75% stays
// quiet), two EADDRNOTAVAIL failures, 2 events lost a second.
const rulesTests = `rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'conntrace_ephemeral_ports_usable{instance="n1",netns="1"}'
        values: '20x10'
      - series: 'conntrace_ephemeral_ports_in_use{instance="n1",netns="1",destination="10.0.0.1:443"}'
        values: '17x10'
      - series: 'conntrace_ephemeral_ports_in_use{instance="n1",netns="1",destination="10.0.0.2:443"}'
        values: '15x10'
      - series: 'conntrace_connect_failures_total{instance="n1",error="EADDRNOTAVAIL",comm="app",container="",port="443"}'
        values: '0 0 2 2 2 2 2 2 2 2'
      - series: 'conntrace_lost_events_total{instance="n1",cause="dropped"}'
        values: '0+120x10'
    alert_rule_test:
      - eval_time: 1m
        alertname: ConntraceEphemeralPortsHigh
        exp_alerts: []
      - eval_time: 3m
        alertname: ConntraceEphemeralPortsHigh
        exp_alerts:
          - exp_labels: {severity: warning, instance: n1, netns: "1", destination: "10.0.0.1:443"}
            exp_annotations:
              summary: "Ephemeral ports towards 10.0.0.1:443 over 80% used"
              description: "n1: 85% of the usable ephemeral ports of network namespace 1 are held towards 10.0.0.1:443 (TIME_WAIT included). Past 100%, connect() fails with EADDRNOTAVAIL. Who: conntrace audit --port on that node."
      - eval_time: 1m
        alertname: ConntraceEphemeralPortsExhausted
        exp_alerts: []
      - eval_time: 3m
        alertname: ConntraceEphemeralPortsExhausted
        exp_alerts:
          - exp_labels: {severity: critical, instance: n1, comm: app, port: "443"}
            exp_annotations:
              summary: "connect() failed for want of a free local port"
              description: "n1: 2 connect() calls of app  to port 443 failed with EADDRNOTAVAIL in 5 minutes: no ephemeral port was free."
      - eval_time: 4m
        alertname: ConntraceLostEvents
        exp_alerts: []
      - eval_time: 10m
        alertname: ConntraceLostEvents
        exp_alerts:
          - exp_labels: {severity: warning, instance: n1, cause: dropped}
            exp_annotations:
              summary: "conntrace is losing events"
              description: "n1: 2 events a second lost (dropped): its counts are low. dropped: the ring buffer was full; skipped: the kernel skipped hook runs; evicted: the socket table was full."
`

// TestDashboard: the dashboard is Grafana JSON whose every panel has a
// query (cmd/conntrace's TestServePrometheus runs them on a real
// Prometheus).
func TestDashboard(t *testing.T) {
	exprs, err := DashboardQueries()
	if err != nil {
		t.Fatal(err)
	}
	if len(exprs) < 8 {
		t.Errorf("%d queries", len(exprs))
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []any  `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(Dashboard, &d); err != nil || d.UID != "conntrace" {
		t.Fatalf("dashboard: %v, uid %q", err, d.UID)
	}
	for _, p := range d.Panels {
		if p.Title == "" || len(p.Targets) != 1 {
			t.Errorf("panel %q: %d targets", p.Title, len(p.Targets))
		}
	}
}
