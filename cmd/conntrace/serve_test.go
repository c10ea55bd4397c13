// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/conntrace/conntrace/cmd/conntrace/deploy"
	"github.com/conntrace/conntrace/tracer/testnet"
)

// servedAddr is the address serve said it serves on (stderr).
// (serve says it before it creates the ready file; reading the pipe may
// take a moment longer).
func servedAddr(t *testing.T, r *cliRun) string {
	t.Helper()
	re := regexp.MustCompile(`serving http://([^/]+)/metrics`)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(r.stderr.String()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no address in serve's stderr:\n%s", r.stderr.String())
	return ""
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// prometheusServer runs Debian's prometheus scraping target every second,
// with a data directory of its own and `conntrace deploy rules`, and
// returns its address once ready.
func prometheusServer(t *testing.T, target string) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), deploy.Rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [rules.yaml]
scrape_configs:
  - job_name: conntrace
    static_configs:
      - targets: [%q]
`, target)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	cmd := exec.Command("prometheus", "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("prometheus (from Debian's prometheus package; make deps installs it): %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	if !answersOK("http://"+addr+"/-/ready", 30*time.Second) {
		t.Fatalf("prometheus not ready within 30s:\n%s", logs.String())
	}
	return addr
}

// answersOK reports whether url answers 200 within d.
func answersOK(url string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
	}
	return false
}

// promAPI gets a Prometheus API path and decodes its data into v.
func promAPI(t *testing.T, addr, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string
		Error  string
		Data   json.RawMessage
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		t.Fatalf("%s: %v %s: %s", path, err, r.Error, body)
	}
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("%s: %v: %s", path, err, r.Data)
	}
}

// promQuery asks Prometheus' HTTP API for the value of an instant query
// that has one series (ok false when it has none).
func promQuery(t *testing.T, addr, query string) (v float64, ok bool) {
	t.Helper()
	var data struct {
		Result []struct {
			Value [2]any
		}
	}
	promAPI(t, addr, "/api/v1/query?query="+url.QueryEscape(query), &data)
	switch len(data.Result) {
	case 0:
		return 0, false
	case 1:
	default:
		t.Fatalf("query %s: %d series, want 1: %v", query, len(data.Result), data.Result)
	}
	s, _ := data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("query %s: value %q", query, s)
	}
	return v, true
}

// TestServePrometheus: Debian's Prometheus server scrapes `conntrace
// serve` every second while named processes in their own network
// namespaces make exact traffic (serveTraffic); every count is read back
// through Prometheus' query API, as a dashboard would. Not in vmtest's
// VMs, which have no Prometheus: TestServeMetrics runs there.
//
// Beside it, what `conntrace deploy` prints for Prometheus: the alerting
// rules are loaded and evaluate without error, and every query of the
// dashboard runs, returning series.
func TestServePrometheus(t *testing.T) {
	var prom string
	testServe(t, func(t *testing.T, target string) sumFunc {
		prom = prometheusServer(t, target)
		return promSum(prom)
	})

	var rules struct {
		Groups []struct {
			Rules []struct {
				Name, Health, LastError string
			}
		}
	}
	promAPI(t, prom, "/api/v1/rules", &rules)
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Name)
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if want := []string{"ConntraceEphemeralPortsHigh", "ConntraceEphemeralPortsExhausted", "ConntraceLostEvents"}; !slices.Equal(names, want) {
		t.Errorf("rules loaded: %q, want %q", names, want)
	}

	exprs, err := deploy.DashboardQueries()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exprs {
		q := strings.NewReplacer("$__rate_interval", "1m", "$instance", ".*").Replace(e)
		var res struct{ Result []json.RawMessage }
		promAPI(t, prom, "/api/v1/query?query="+url.QueryEscape(q), &res)
		// The ephemeral-port share and lost events have series here;
		// rates and quantiles need two scrapes of a change, which a
		// fresh server may not have.
		if strings.Contains(q, "ephemeral") && len(res.Result) == 0 {
			t.Errorf("dashboard query %s: no series", q)
		}
	}
}

// TestServeMetrics: the same traffic, read from /metrics directly.
func TestServeMetrics(t *testing.T) {
	testServe(t, func(t *testing.T, target string) sumFunc {
		return func(t *testing.T, name string, labels map[string]string) (float64, bool) {
			return scrapeSum(t, target, name, labels)
		}
	})
}

// expectSum waits until sum sees want.
func expectSum(t *testing.T, sum sumFunc, name string, labels map[string]string, want float64) {
	t.Helper()
	var v float64
	var ok bool
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		if v, ok = sum(t, name, labels); ok && v == want {
			return
		}
	}
	t.Errorf("%s%v = %v (found: %v), want %v", name, labels, v, ok, want)
}

// promSum is a sumFunc of Prometheus' query API.
func promSum(prom string) sumFunc {
	return func(t *testing.T, name string, labels map[string]string) (float64, bool) {
		var sel []string
		for k, v := range labels {
			sel = append(sel, k+"="+strconv.Quote(v))
		}
		slices.Sort(sel)
		return promQuery(t, prom, "sum("+name+"{"+strings.Join(sel, ",")+"})")
	}
}

// sumFunc sums the series of metric name that have labels (and any
// others); ok is false when there are none.
type sumFunc func(t *testing.T, name string, labels map[string]string) (v float64, ok bool)

// scrapeSum is sumFunc on one scrape of target's /metrics. A histogram's
// name_count and name_sum are read from its family.
func scrapeSum(t *testing.T, target, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	resp, err := http.Get("http://" + target + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	family, part := name, ""
	if fams[name] == nil {
		for _, suffix := range []string{"_count", "_sum"} {
			if base, found := strings.CutSuffix(name, suffix); found {
				family, part = base, suffix
			}
		}
	}
	f := fams[family]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, want := range labels {
			if have[k] != want {
				continue next
			}
		}
		ok = true
		switch {
		case part == "_count":
			v += float64(m.GetHistogram().GetSampleCount())
		case part == "_sum":
			v += m.GetHistogram().GetSampleSum()
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		default:
			v += m.GetGauge().GetValue()
		}
	}
	return v, ok
}

// testServe runs serve, reads it through the sumFunc reader makes, and
// checks the counts of this traffic: 15 connections held to one
// destination (75% of a 20-port ephemeral range) then closed, 2
// connections with payload, 3 refused connects, 2 binds to a port another
// process holds. /healthz says when serve is up.
func testServe(t *testing.T, reader func(t *testing.T, target string) sumFunc) {
	cliNS, srvNS := auditNets(t, 15) // ct-server accepts 15 on 198.18.0.2:9443
	r := startCLI(t, "serve", "--listen", "127.0.0.1:0", "--port", "9443,9444,9445,9446")
	target := servedAddr(t, r)
	if resp, err := http.Get("http://" + target + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz once attached: %v %v", resp, err)
	}
	sum := reader(t, target)

	holder := testnet.Start(t, "ct-holder", testnet.Role{NS: cliNS.Path(), Addr: "198.18.0.2:9443", Hold: 15, Summary: true})
	holder.Expect(t, "ready")
	holder.Expect(t, "held")

	refused := testnet.Start(t, "ct-refused", testnet.Role{NS: cliNS.Path(), Addr: "198.18.0.2:9444", Hold: 3, MayFail: true, Summary: true})
	refused.Expect(t, "ready")
	for range 3 {
		refused.Expect(t, "failed ECONNREFUSED")
	}
	refused.Expect(t, "held 0")
	refused.Go(t)

	owner := testnet.Start(t, "ct-owner", testnet.Role{NS: srvNS.Path(), Addr: "198.18.0.2:9445", Bind: true, Listen: true})
	owner.Expect(t, "bound")
	for range 2 {
		b := testnet.Start(t, "ct-binder", testnet.Role{NS: srvNS.Path(), Addr: "198.18.0.2:9445", Bind: true, MayFail: true})
		b.Expect(t, "failed EADDRINUSE")
		b.Wait(t)
	}

	srv := testnet.Start(t, "ct-payload-srv", testnet.Role{Server: true, NS: srvNS.Path(), Addr: "198.18.0.2:9446", Conns: 2, Send: 500, Recv: 1000})
	srv.Expect(t, "listening")
	cli := testnet.Start(t, "ct-payload-cli", testnet.Role{NS: cliNS.Path(), Addr: "198.18.0.2:9446", Repeat: 2, Send: 1000, Recv: 500})
	cli.Expect(t, "ready")
	cli.Wait(t)
	srv.Wait(t)

	var st syscall.Stat_t
	if err := syscall.Stat(cliNS.Path(), &st); err != nil {
		t.Fatal(err)
	}
	netns := strconv.FormatUint(st.Ino, 10)
	type L = map[string]string
	expect := func(name string, labels L, want float64) {
		t.Helper()
		expectSum(t, sum, name, labels, want)
	}
	expect("conntrace_connections_total", L{"direction": "out", "port": "9443", "comm": "ct-holder", "container": ""}, 15)
	expect("conntrace_connections_total", L{"direction": "in", "port": "9443", "comm": "ct-server"}, 15)
	expect("conntrace_connections_total", nil, 15+15+2+2)
	expect("conntrace_ephemeral_ports_in_use", L{"netns": netns, "destination": "198.18.0.2:9443"}, 15)
	expect("conntrace_ephemeral_ports_usable", L{"netns": netns}, 20)
	expect("conntrace_connect_failures_total", L{"error": "ECONNREFUSED", "port": "9444", "comm": "ct-refused"}, 3)
	expect("conntrace_connect_failures_total", nil, 3)
	expect("conntrace_bind_failures_total", L{"error": "EADDRINUSE", "port": "9445", "comm": "ct-binder"}, 2)
	expect("conntrace_sent_bytes_total", L{"direction": "out", "port": "9446", "comm": "ct-payload-cli"}, 2000)
	expect("conntrace_received_bytes_total", L{"direction": "out", "port": "9446", "comm": "ct-payload-cli"}, 1000)
	expect("conntrace_sent_bytes_total", L{"direction": "in", "port": "9446", "comm": "ct-payload-srv"}, 1000)
	expect("conntrace_received_bytes_total", L{"direction": "in", "port": "9446", "comm": "ct-payload-srv"}, 2000)
	expect("conntrace_handshake_seconds_count", L{"direction": "out", "port": "9443"}, 15)

	holder.Go(t)
	holder.Wait(t)
	expect("conntrace_connection_closes_total", L{"direction": "out", "reason": "fin", "port": "9443", "comm": "ct-holder"}, 15)
	expect("conntrace_connection_closes_total", L{"direction": "in", "reason": "fin", "port": "9443", "comm": "ct-server"}, 15)
	expect("conntrace_connection_duration_seconds_count", L{"direction": "out", "port": "9443"}, 15)
	// Closed first by the client, its 15 ports sit in TIME_WAIT: still
	// taken.
	expect("conntrace_ephemeral_ports_in_use", L{"netns": netns, "destination": "198.18.0.2:9443"}, 15)
	expect("conntrace_lost_events_total", nil, 0)
	expect("conntrace_series_overflow_total", nil, 0)
	// The build's labels are what `conntrace version` says (the served
	// binary is this test binary).
	v := versionInfo()
	expect("conntrace_build_info", L{"version": v.Version, "arch": runtime.GOARCH, "go_version": runtime.Version(),
		"bpf_object_sha256": v.BPFObject, "hook_modes": "fentry,kprobe,tracepoint"}, 1)
	owner.Go(t)

	r.cmd.Process.Signal(syscall.SIGTERM)
	r.wait(t)
	if !strings.Contains(r.stderr.String(), ", 0 lost") {
		t.Errorf("stderr: %s", r.stderr.String())
	}
}

// TestServeAddressInUse: a port another process holds is one line and
// exit 1, before anything is loaded (no root needed to see it).
func TestServeAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	var stdout, stderr strings.Builder
	code := run([]string{"conntrace", "serve", "--listen", addr}, &stdout, &stderr)
	port := portOf(addr)
	if want := "conntrace: --listen " + addr + ": address already in use (see: conntrace who " + port + ")\n"; code != exitError || stderr.String() != want {
		t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr.String(), exitError, want)
	}
}

// TestServeImage: the image `make image` builds runs serve under podman
// (privileged, the host's PID namespace and network, as the DaemonSet
// runs it) and Prometheus scrapes it: one connection, both ends counted;
// SIGTERM (podman stop) ends it cleanly with its summary (listen,
// connect, accept, two closes).
func TestServeImage(t *testing.T) {
	pm := testnet.NewPodman(t)
	image := fmt.Sprintf("localhost/conntrace-test-%d", os.Getpid())
	build := exec.Command("make", "-C", "../..", "image", "IMAGE="+image)
	build.Env = pm.Env()
	out, err := build.CombinedOutput()
	t.Cleanup(func() {
		// By tag: an image of the same content under another name (a
		// user's own make image) stays.
		tags, _ := pm.Try("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", "reference="+image)
		for _, tag := range strings.Fields(tags) {
			pm.Try("rmi", tag)
		}
	})
	if err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	name := fmt.Sprintf("ct-serve-%d", os.Getpid())
	t.Cleanup(func() { pm.Try("rm", "-f", "-t", "0", name) })
	pm.Run("run", "-d", "--name", name, "--privileged", "--pid=host", "--network=host", image+":latest",
		"serve", "--listen", addr, "--port", "9447")
	if !answersOK("http://"+addr+"/healthz", 30*time.Second) {
		logs, _ := pm.Cmd("logs", name).CombinedOutput()
		t.Fatalf("the container's /healthz not 200 within 30s:\n%s", logs)
	}
	sum := promSum(prometheusServer(t, addr))
	exchange(t, testnet.NewNS(t), "127.0.0.1:9447")
	expectSum(t, sum, "conntrace_connections_total", map[string]string{"direction": "out", "port": "9447", "comm": "ct-client"}, 1)
	expectSum(t, sum, "conntrace_connections_total", map[string]string{"direction": "in", "port": "9447", "comm": "ct-server"}, 1)
	expectSum(t, sum, "conntrace_connection_closes_total", map[string]string{"port": "9447"}, 2)
	expectSum(t, sum, "conntrace_lost_events_total", nil, 0)
	pm.Run("stop", "-t", "10", name)
	if code := pm.Run("inspect", name, "--format", "{{.State.ExitCode}}"); code != "0" {
		t.Errorf("exit status %s after SIGTERM", code)
	}
	// conmon writes the log behind the container's back: the last line
	// may take a moment. podman logs prints the container's stderr on its
	// own.
	var logs []byte
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if logs, _ = pm.Cmd("logs", name).CombinedOutput(); regexp.MustCompile(`\nconntrace: 5 events, 0 lost\n`).Match(logs) {
			return
		}
	}
	t.Errorf("the container's log:\n%s", logs)
}

func TestHealthz(t *testing.T) {
	var attached atomic.Bool
	h := healthz(&attached)
	for _, tc := range []struct {
		attached bool
		code     int
	}{{false, http.StatusServiceUnavailable}, {true, http.StatusOK}, {false, http.StatusServiceUnavailable}} {
		attached.Store(tc.attached)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		if rec.Code != tc.code {
			t.Errorf("attached %v: %d, want %d", tc.attached, rec.Code, tc.code)
		}
	}
}

// TestHealthzWhileStopping: from the signal that stops serve until the
// HTTP server closes, /healthz answers 503 (a load balancer or a probe
// sees it stopping), never 200, and never refuses while the tracer
// detaches.
func TestHealthzWhileStopping(t *testing.T) {
	r := startCLI(t, "serve", "--listen", "127.0.0.1:0", "--port", "1")
	target := servedAddr(t, r)
	type answer struct {
		at   time.Time // when the request was sent
		code int       // 0: no answer (refused)
	}
	var answers []answer
	client := &http.Client{Timeout: 2 * time.Second}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			at := time.Now()
			a := answer{at: at}
			if resp, err := client.Get("http://" + target + "/healthz"); err == nil {
				a.code = resp.StatusCode
				resp.Body.Close()
			}
			answers = append(answers, a)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	signalled := time.Now()
	r.cmd.Process.Signal(syscall.SIGTERM)
	r.wait(t)
	close(stop)
	<-done

	var before, stopping, refused, late200 int
	for _, a := range answers {
		switch {
		case a.at.Before(signalled):
			if a.code == http.StatusOK {
				before++
			}
		case a.code == http.StatusServiceUnavailable:
			if refused > 0 {
				t.Errorf("503 after a refused connection")
			}
			stopping++
		case a.code == 0:
			refused++
		case a.at.After(signalled.Add(5 * time.Millisecond)):
			late200++
		}
	}
	t.Logf("/healthz: %d ok before the signal; after it %d 503, %d 200 past 5 ms, then %d refused", before, stopping, late200, refused)
	if before == 0 || stopping == 0 || late200 != 0 {
		t.Errorf("want 200s before the signal and 503s after it, none 200 past 5 ms: %d ok before, %d 503, %d 200 later", before, stopping, late200)
	}
}
