package tracer

import "testing"

func TestParseHooks(t *testing.T) {
	for _, name := range []string{"auto", "fentry", "kprobe", "tracepoint"} {
		h, err := ParseHooks(name)
		if err != nil || h.String() != name {
			t.Errorf("ParseHooks(%q) = %v, %v", name, h, err)
		}
	}
	if _, err := ParseHooks("ebpf"); err == nil || err.Error() != `unknown hook mode "ebpf" (want auto, fentry, kprobe, tracepoint)` {
		t.Errorf("ParseHooks(ebpf): %v", err)
	}
	if got := HooksAuto.candidates(); len(got) != 3 || got[0] != HooksFentry || got[2] != HooksTracepoint {
		t.Errorf("auto tries %v", got)
	}
	if got := HooksKprobe.candidates(); len(got) != 1 || got[0] != HooksKprobe {
		t.Errorf("kprobe tries %v", got)
	}
}

// Every mode attaches its own two hooks and the same common ones, each
// with a program of its own that exists in the object.
func TestParseHooksPerMode(t *testing.T) {
	spec, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range HookModes {
		hooks := AllHooks(m)
		want := len(commonHooks()) + 2
		if len(hooks) != want {
			t.Errorf("%s: %d hooks, want %d", m, len(hooks), want)
		}
		progs := map[string]bool{}
		for _, h := range hooks {
			if progs[h.prog] || spec.Programs[h.prog] == nil {
				t.Errorf("%s: program %q duplicated or missing", m, h.prog)
			}
			progs[h.prog] = true
		}
		ms, err := modeSpec(spec, m)
		if err != nil || len(ms.Programs) != want {
			t.Errorf("%s: the mode's spec keeps %d programs (%v), want %d", m, len(ms.Programs), err, want)
		}
	}
}
