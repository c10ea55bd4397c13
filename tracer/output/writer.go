// SPDX-License-Identifier: Apache-2.0

// Package output formats tracer events as aligned text or JSON lines.
package output

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/conntrace/conntrace/tracer/event"
)

// Format is an output format.
type Format int

const (
	Text Format = iota
	JSON
)

// ParseFormat parses the -o flag.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "text":
		return Text, nil
	case "json":
		return JSON, nil
	}
	return 0, fmt.Errorf("unknown output format %q (want text or json)", s)
}

// ErrClosedPipe is returned when the reader of the output went away
// (conntrace ... | head -1): a normal way for a run to end.
var ErrClosedPipe = errors.New("output closed")

// Writer is an event.Sink that formats events into a buffered writer. It
// reuses one line buffer: formatting allocates nothing.
type Writer struct {
	bw     *bufio.Writer
	warn   io.Writer
	format Format
	line   []byte
}

// NewWriter writes events to w. In text format, warnings (lost events)
// go to warn so that they stay visible when w is a file.
func NewWriter(w io.Writer, format Format, warn io.Writer) *Writer {
	return &Writer{bw: bufio.NewWriterSize(w, 64<<10), warn: warn, format: format, line: make([]byte, 0, 512)}
}

// WriteHeader writes the column header (text format only).
func (w *Writer) WriteHeader() error {
	if w.format != Text {
		return nil
	}
	_, err := w.bw.Write(TextHeader)
	return w.check(err)
}

// Write formats one event.
func (w *Writer) Write(ev *event.Event) error {
	if w.format == JSON {
		w.line = AppendJSON(w.line[:0], ev)
	} else {
		w.line = AppendText(w.line[:0], ev)
		if ev.Type == event.Lost && w.warn != nil {
			// Out of band, and now: a warning must not wait in a buffer.
			_, err := w.warn.Write(w.line)
			return err
		}
	}
	_, err := w.bw.Write(w.line)
	return w.check(err)
}

// Flush writes out what is buffered.
func (w *Writer) Flush() error { return w.check(w.bw.Flush()) }

func (w *Writer) check(err error) error {
	if errors.Is(err, syscall.EPIPE) {
		return ErrClosedPipe
	}
	return err
}
