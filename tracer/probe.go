// SPDX-License-Identifier: Apache-2.0

package tracer

import "fmt"

// HookResult is the outcome of attaching one hook for real.
type HookResult struct {
	Hook Hook
	Err  error
}

// ModeReport is what trying one hook mode found: whether its programs
// load, and whether each of its hooks attaches.
type ModeReport struct {
	Mode  Hooks
	Err   error // the mode's programs did not load; Hooks is empty
	Hooks []HookResult
}

// OK reports whether the mode loads and every hook attaches.
func (r *ModeReport) OK() bool { return r.Problem() == nil }

// Problem says why the mode is not OK: its load error or its first hook's.
func (r *ModeReport) Problem() error {
	if r.Err != nil {
		return r.Err
	}
	for _, h := range r.Hooks {
		if h.Err != nil {
			return fmt.Errorf("%s: %w", h.Hook, h.Err)
		}
	}
	return nil
}

// Probe tries every hook mode for real, in HookModes order: it loads each
// mode's programs with cfg's settings, attaches each hook, and detaches
// again. Its error is what keeps every mode from being tried (privileges,
// BTF). The first mode that is OK is the one Open picks for HooksAuto.
func Probe(cfg Config) ([]ModeReport, error) {
	spec, opts, err := prepare(&cfg)
	if err != nil {
		return nil, err
	}
	udp := udpTarget{}
	if cfg.Proto != ProtoTCP {
		udp.root, udp.err = udpRoot()
	}
	reports := make([]ModeReport, 0, len(HookModes))
	for _, m := range HookModes {
		r := ModeReport{Mode: m}
		hooks, err := hooksOf(spec, m, cfg.Proto != ProtoUDP, udp.root != "")
		if err != nil {
			return nil, err
		}
		coll, _, err := loadMode(spec, opts, m, &cfg, udp)
		if err != nil {
			r.Err = err
			reports = append(reports, r)
			continue
		}
		for _, h := range hooks {
			l, err := attachHook(h, coll.Programs[h.prog], udp.root)
			if err == nil {
				l.Close()
			} else {
				err = privilegeError("attach", err)
			}
			r.Hooks = append(r.Hooks, HookResult{Hook: h, Err: err})
		}
		coll.Close()
		reports = append(reports, r)
	}
	return reports, nil
}

// BestMode returns the first mode in reports that is OK.
func BestMode(reports []ModeReport) (Hooks, bool) {
	for i := range reports {
		if reports[i].OK() {
			return reports[i].Mode, true
		}
	}
	return HooksAuto, false
}
