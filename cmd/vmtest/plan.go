// SPDX-License-Identifier: Apache-2.0

package main

// plan is what the init runs, written into the initramfs as /vmtest.json.
type plan struct {
	Modules []string `json:"modules"` // paths of .ko files to load, in order
	Runs    []run    `json:"runs"`
}

type run struct {
	Name  string   `json:"name"`  // for the report
	Short string   `json:"short"` // in front of each line of the console
	Bin   string   `json:"bin"`   // path inside the VM
	Args  []string `json:"args"`
	Env   []string `json:"env"`
	Dir   string   `json:"dir"` // working directory (the package's, for testdata)
	// Cost is about how long it runs, in seconds, measured: the host
	// starts the longest first.
	Cost int `json:"-"`
}

// runParam, on the kernel's command line, picks the run a VM makes
// (vmtest.run=2: the plan's third).
const runParam = "vmtest.run="

// resultMarker starts the line the init prints last; the host reads it.
const resultMarker = "VMTEST RESULT:"
