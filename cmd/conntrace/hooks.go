package main

import (
	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer"
)

// The flags that choose how conntrace hooks the kernel (watch, doctor).

func hooksFlag() cli.Flag {
	return &cli.StringFlag{Name: "hooks", Value: "auto",
		Usage: "`MODE` of attributing connections: auto (the best that works), fentry, kprobe or tracepoint"}
}

func btfFlag() cli.Flag {
	return &cli.StringFlag{Name: "btf", Usage: "kernel BTF file at `PATH`, for a kernel without " + tracer.KernelBTF}
}

func parseHooks(c *cli.Context) (tracer.Hooks, error) {
	h, err := tracer.ParseHooks(c.String("hooks"))
	if err != nil {
		return 0, usagef("--hooks: %v", err)
	}
	return h, nil
}
