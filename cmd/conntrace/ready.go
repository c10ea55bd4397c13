// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/conntrace/conntrace/tracer"
)

// readyFile is --ready-file: a file that appears once the tracer sees
// events and is gone when the run ends, so a script never reads a stale
// one. It is never written through: "ready\n" goes to a new file of a
// random name beside it (O_CREAT|O_EXCL, which no symlink satisfies),
// written before anything is loaded and renamed into place once ready.
type readyFile struct {
	path    string
	tmp     string // the file written ahead, until renamed
	created bool
	// override: the directory is writable only with CAP_DAC_OVERRIDE
	// (sudo ... --ready-file ~/ready): the run keeps it to rename and
	// remove the file.
	override bool
}

// newReadyFile checks path and writes the file ahead, before anything is
// loaded, so that a directory it cannot write in, a read-only or a full
// file system is a usage error (exit 2); nil for "". remove must follow.
func newReadyFile(path string) (*readyFile, error) {
	if path == "" {
		return nil, nil
	}
	if err := checkReadyPath(path); err != nil {
		return nil, err
	}
	r := &readyFile{path: path, override: !writableWithoutOverride(filepath.Dir(path))}
	f, err := os.CreateTemp(filepath.Dir(path), ".conntrace-ready-*")
	if err != nil {
		return nil, usagef("--ready-file %q: %v", path, unwrapPath(err))
	}
	r.tmp = f.Name()
	_, err = f.WriteString("ready\n")
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(r.tmp)
		return nil, usagef("--ready-file %q: %v", path, unwrapPath(err))
	}
	return r, nil
}

// writableWithoutOverride reports whether this process may create and
// remove files in dir by its mode alone, as it may once its capabilities
// are dropped.
func writableWithoutOverride(dir string) bool {
	st, err := os.Stat(dir)
	if err != nil {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	mode := st.Mode().Perm()
	switch {
	case sys.Uid == uint32(os.Geteuid()):
		return mode&0o300 == 0o300
	case inGroup(sys.Gid):
		return mode&0o030 == 0o030
	}
	return mode&0o003 == 0o003
}

func inGroup(gid uint32) bool {
	if gid == uint32(os.Getegid()) {
		return true
	}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		if uint32(g) == gid {
			return true
		}
	}
	return false
}

// capabilities is what the run keeps for the file once attached.
func (r *readyFile) capabilities() []tracer.Capability {
	if r != nil && r.override {
		return []tracer.Capability{tracer.CapDACOverride}
	}
	return nil
}

// checkReadyPath accepts a path that does not exist in a directory that
// does, or a regular file of this user's (a run that was killed left it).
// Anything else there (a symlink, another user's file) is not ours to
// replace.
func checkReadyPath(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(filepath.Dir(path)); err != nil {
			return usagef("--ready-file %q: its directory: %v", path, unwrapPath(err))
		}
		return nil
	}
	if err != nil {
		return usagef("--ready-file %q: %v", path, unwrapPath(err))
	}
	if !st.Mode().IsRegular() {
		return usagef("--ready-file %q exists and is not a regular file (%s): remove it or choose another path", path, kind(st.Mode()))
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != uint32(os.Geteuid()) {
		return usagef("--ready-file %q exists and belongs to uid %d, not to this user: remove it or choose another path", path, sys.Uid)
	}
	return nil
}

func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsDir():
		return "a directory"
	}
	return "a special file"
}

// unwrapPath drops the path a *fs.PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// create puts the file in place; nothing for a nil readyFile.
func (r *readyFile) create() error {
	if r == nil {
		return nil
	}
	if err := checkReadyPath(r.path); err != nil {
		return err
	}
	if err := os.Rename(r.tmp, r.path); err != nil {
		return fmt.Errorf("--ready-file %q: %v", r.path, unwrapPath(err))
	}
	r.created = true
	return nil
}

// remove deletes the file if this run made it, or what it wrote ahead.
func (r *readyFile) remove() {
	switch {
	case r == nil:
	case r.created:
		os.Remove(r.path)
	default:
		os.Remove(r.tmp)
	}
}
