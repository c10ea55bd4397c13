// SPDX-License-Identifier: Apache-2.0

// Package doctor checks what conntrace needs from this machine: kernel
// BTF, lockdown, privileges, tracefs, and each hook tried for real. It
// says which hook mode `watch` would pick and, in one line each, what to do
// about every problem.
package doctor

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer"
	"github.com/conntrace/conntrace/tracer/containers"
)

// Report is the outcome of Run. Its JSON field names are part of the
// output contract of `conntrace doctor -o json`.
type Report struct {
	Kernel   string      `json:"kernel"`
	Checks   []Check     `json:"checks"`
	Modes    []ModeCheck `json:"modes"`
	Auto     string      `json:"auto"` // the mode watch picks; "" when none works
	CanWatch bool        `json:"can_watch"`
	Advice   []string    `json:"advice"`
}

// Check is one property of the machine.
type Check struct {
	Name   string `json:"name"` // btf, lockdown, capabilities, tracefs, bpffs
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// ModeCheck is one hook mode, tried for real.
type ModeCheck struct {
	Mode  string      `json:"mode"`
	OK    bool        `json:"ok"`
	Error string      `json:"error,omitempty"` // the programs did not load
	Hooks []HookCheck `json:"hooks"`
}

// HookCheck is one hook of a mode that loaded.
type HookCheck struct {
	Hook  string `json:"hook"` // e.g. fentry/tcp_connect
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Run checks the machine. btfPath is the --btf file ("" for the kernel's).
func Run(btfPath string) *Report {
	r := &Report{Checks: []Check{}, Modes: []ModeCheck{}, Advice: []string{}}
	var uts unix.Utsname
	if unix.Uname(&uts) == nil {
		r.Kernel = unix.ByteSliceToString(uts.Release[:])
	}
	r.checkBTF(btfPath)
	r.checkLockdown()
	r.checkCapabilities()
	r.checkTracefs()
	r.checkBPFFS()
	r.checkCgroups()

	reports, err := tracer.Probe(tracer.Config{BTFPath: btfPath})
	if err != nil {
		r.advise("%v", err)
		return r
	}
	for _, mr := range reports {
		mc := ModeCheck{Mode: mr.Mode.String(), OK: mr.OK(), Hooks: []HookCheck{}}
		if mr.Err != nil {
			mc.Error = mr.Err.Error()
		}
		for _, h := range mr.Hooks {
			hc := HookCheck{Hook: h.Hook.String(), OK: h.Err == nil}
			if h.Err != nil {
				hc.Error = h.Err.Error()
			}
			mc.Hooks = append(mc.Hooks, hc)
		}
		r.Modes = append(r.Modes, mc)
	}
	if best, ok := tracer.BestMode(reports); ok {
		r.Auto, r.CanWatch = best.String(), true
	}
	r.adviseModes(reports)
	return r
}

func (r *Report) add(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// advise adds a line of advice, once.
func (r *Report) advise(format string, args ...any) {
	if a := fmt.Sprintf(format, args...); !slices.Contains(r.Advice, a) {
		r.Advice = append(r.Advice, a)
	}
}

func (r *Report) checkBTF(btfPath string) {
	if btfPath != "" {
		_, err := os.Stat(btfPath)
		r.add("btf", err == nil, "%s (--btf)", btfPath)
		if err != nil {
			r.advise("--btf %s: %v", btfPath, err)
		}
		return
	}
	if _, err := os.Stat(tracer.KernelBTF); err != nil {
		r.add("btf", false, "%s missing: the kernel was built without CONFIG_DEBUG_INFO_BTF", tracer.KernelBTF)
		r.advise("no kernel BTF: give a BTF file for this kernel with --btf PATH (fentry hooks also need the kernel's own)")
		return
	}
	r.add("btf", true, "%s", tracer.KernelBTF)
}

// checkLockdown reads the kernel lockdown mode: "confidentiality" forbids
// BPF programs from reading kernel memory, which every hook needs.
func (r *Report) checkLockdown() {
	data, err := os.ReadFile("/sys/kernel/security/lockdown")
	if err != nil {
		r.add("lockdown", true, "unknown (no /sys/kernel/security/lockdown: securityfs not mounted or no lockdown support)")
		return
	}
	mode := "none"
	if i, j := strings.IndexByte(string(data), '['), strings.IndexByte(string(data), ']'); i >= 0 && j > i {
		mode = string(data[i+1 : j])
	}
	ok := mode != "confidentiality"
	r.add("lockdown", ok, "%s", mode)
	if !ok {
		r.advise("kernel lockdown is 'confidentiality', which forbids BPF from reading kernel memory: boot with lockdown=integrity (or none)")
	}
}

func (r *Report) checkCapabilities() {
	var held, missing []string
	for _, c := range tracer.UsedCapabilities {
		has, ok := tracer.HasCapability(c)
		if !ok {
			r.add("capabilities", true, "unknown (capget failed)")
			return
		}
		if has {
			held = append(held, c.String())
		} else {
			missing = append(missing, c.String())
		}
	}
	has := func(name string) bool { return slices.Contains(held, name) }
	ok := has("CAP_SYS_ADMIN") || (has("CAP_BPF") && has("CAP_PERFMON"))
	detail := "held: " + orNone(held)
	if len(missing) > 0 {
		detail += "; missing: " + strings.Join(missing, " ")
	}
	r.add("capabilities", ok, "%s", detail)
	if !ok {
		r.advise("%v", tracer.ErrNeedRoot)
	}
}

// checkTracefs mounts tracefs where it is missing, as watch does, and
// says so.
func (r *Report) checkTracefs() {
	mounted, err := tracer.MountTracefs()
	if err != nil {
		r.add("tracefs", false, "%v", err)
		r.advise("%v", err)
		return
	}
	dir, err := tracer.Tracefs()
	switch {
	case err != nil:
		r.add("tracefs", false, "%v", err)
		r.advise("tracefs cannot be read (%v): tracepoints cannot be attached", err)
	case mounted:
		r.add("tracefs", true, "%s (was not mounted: conntrace mounted it, as watch does)", dir)
	default:
		r.add("tracefs", true, "%s", dir)
	}
}

// checkBPFFS reports the BPF filesystem. conntrace pins nothing, so it is
// information, never a problem.
func (r *Report) checkBPFFS() {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		r.add("bpffs", true, "/sys/fs/bpf (not needed)")
		return
	}
	r.add("bpffs", true, "not mounted (not needed)")
}

// checkCgroups: the cgroup v2 hierarchy, where events' cgroups and
// containers are resolved, and which runtimes' state is there to name
// containers. Not needed to watch.
func (r *Report) checkCgroups() {
	mount, err := containers.Mount()
	if err != nil {
		r.add("cgroup2", true, "%v (not needed; events carry no container, --container and --cgroup unavailable)", err)
		r.advise("no cgroup v2 hierarchy: mount one (mount -t cgroup2 none /sys/fs/cgroup) to see containers")
		return
	}
	found := containers.DefaultState().Found()
	if len(found) == 0 {
		r.add("cgroup2", true, "%s; no container runtime's state found (containers are named by id only)", mount)
		return
	}
	r.add("cgroup2", true, "%s; container state of: %s", mount, strings.Join(found, ", "))
}

// adviseModes says what the unavailable modes cost.
func (r *Report) adviseModes(reports []tracer.ModeReport) {
	best, ok := tracer.BestMode(reports)
	if !ok {
		r.advise("no hook mode works on this kernel: conntrace watch cannot run (see the errors above)")
		return
	}
	for _, mr := range reports {
		if mr.Mode == best {
			break
		}
		r.advise("%s hooks unavailable: %v; watch uses %s hooks, with the same events", mr.Mode, mr.Problem(), best)
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}
