// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"strings"
)

// cpioWriter writes a "newc" cpio archive, the format the kernel unpacks
// as an initramfs. Only what an initramfs needs: directories and regular
// files, owned by root.
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
}

func newCPIO(w io.Writer) *cpioWriter { return &cpioWriter{w: w, dirs: map[string]bool{}} }

func (c *cpioWriter) header(name string, mode uint32, size int) error {
	c.ino++
	nlink := 1
	if mode&0o040000 != 0 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	if _, err := io.WriteString(c.w, hdr+name+"\x00"); err != nil {
		return err
	}
	return c.pad(len(hdr) + len(name) + 1)
}

// pad aligns to 4 bytes after n bytes.
func (c *cpioWriter) pad(n int) error {
	if r := n % 4; r != 0 {
		_, err := c.w.Write(make([]byte, 4-r))
		return err
	}
	return nil
}

// Dir adds a directory and its parents.
func (c *cpioWriter) Dir(name string) error {
	name = strings.Trim(name, "/")
	if name == "" || c.dirs[name] {
		return nil
	}
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		if err := c.Dir(name[:i]); err != nil {
			return err
		}
	}
	c.dirs[name] = true
	return c.header(name, 0o040755, 0)
}

// File adds a regular file (and its directories).
func (c *cpioWriter) File(name string, perm uint32, data []byte) error {
	name = strings.Trim(name, "/")
	if i := strings.LastIndexByte(name, '/'); i > 0 {
		if err := c.Dir(name[:i]); err != nil {
			return err
		}
	}
	if err := c.header(name, 0o100000|perm, len(data)); err != nil {
		return err
	}
	if _, err := c.w.Write(data); err != nil {
		return err
	}
	return c.pad(len(data))
}

// Close writes the trailer.
func (c *cpioWriter) Close() error {
	return c.header("TRAILER!!!", 0, 0)
}
