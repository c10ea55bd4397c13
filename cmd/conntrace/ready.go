// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// readyFile is --ready-file: a file that appears once the tracer sees
// events and is gone when the run ends, so a script never reads a stale
// one. It is never written through: "ready\n" goes to a new file of a
// random name beside it (O_CREAT|O_EXCL, which no symlink satisfies),
// renamed into place.
type readyFile struct {
	path    string
	created bool
}

// newReadyFile checks path before anything is loaded; nil for "".
func newReadyFile(path string) (*readyFile, error) {
	if path == "" {
		return nil, nil
	}
	if err := checkReadyPath(path); err != nil {
		return nil, err
	}
	return &readyFile{path: path}, nil
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

// create makes the file; nothing for a nil readyFile.
func (r *readyFile) create() error {
	if r == nil {
		return nil
	}
	if err := checkReadyPath(r.path); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(r.path), ".conntrace-ready-*")
	if err != nil {
		return fmt.Errorf("--ready-file %q: %v", r.path, unwrapPath(err))
	}
	_, err = f.WriteString("ready\n")
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), r.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("--ready-file %q: %v", r.path, unwrapPath(err))
	}
	r.created = true
	return nil
}

// remove deletes the file if this run made it.
func (r *readyFile) remove() {
	if r != nil && r.created {
		os.Remove(r.path)
	}
}
