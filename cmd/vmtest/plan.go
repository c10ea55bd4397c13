package main

// plan is what the init runs, written into the initramfs as /vmtest.json.
type plan struct {
	Modules []string `json:"modules"` // paths of .ko files to load, in order
	Runs    []run    `json:"runs"`
}

type run struct {
	Name string   `json:"name"` // for the report
	Bin  string   `json:"bin"`  // path inside the VM
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"` // working directory (the package's, for testdata)
}

// resultMarker starts the line the init prints last; the host reads it.
const resultMarker = "VMTEST RESULT:"
