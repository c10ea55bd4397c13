// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/conntrace/conntrace/tracer/output"
	"github.com/conntrace/conntrace/tracer/services"
	"github.com/conntrace/conntrace/tracer/sockets"
)

var netnsFlag = &cli.StringFlag{Name: "netns", Usage: "look in the network namespace at `PATH` (/run/netns/NAME, /proc/PID/ns/net)", DefaultText: "conntrace's own"}

func portsCommand() *cli.Command {
	return &cli.Command{
		Name:         "ports",
		Usage:        "list listening TCP and bound UDP sockets with their processes (like ss -tulpn)",
		Flags:        []cli.Flag{outputFlag(), netnsFlag},
		Action:       ports,
		OnUsageError: onUsageError,
	}
}

func whoCommand() *cli.Command {
	return &cli.Command{
		Name:      "who",
		Usage:     "show every socket on a port, any state, TCP and UDP, with its process (like lsof -i :PORT)",
		ArgsUsage: "PORT",
		Description: `Matches the local or the remote port. Exit status 1 when nothing is on
the port.`,
		Flags:        []cli.Flag{outputFlag(), netnsFlag},
		Action:       who,
		OnUsageError: onUsageError,
	}
}

// snapshot is what ports and who share: the flags, the namespace, the
// sockets that keep selects.
func snapshot(c *cli.Context, keep func(*sockets.Socket) bool) ([]sockets.Socket, output.Format, uint16, uint16, error) {
	format, err := parseOutput(c)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	ns := sockets.NS{}
	if path := c.String("netns"); path != "" {
		if ns, err = sockets.OpenNS(path); errors.Is(err, sockets.ErrNotNetNS) || errors.Is(err, fs.ErrNotExist) {
			return nil, 0, 0, 0, usagef("--netns: %v", err)
		} else if err != nil {
			return nil, 0, 0, 0, fmt.Errorf("--netns: %v", err)
		}
		defer ns.Close()
	}
	lo, hi, err := sockets.EphemeralRange(ns)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	socks, err := sockets.List(ns, []string{"tcp", "udp"}, keep)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	return socks, format, lo, hi, nil
}

func ports(c *cli.Context) error {
	if err := noArgs(c, ""); err != nil {
		return err
	}
	socks, format, lo, hi, err := snapshot(c, func(s *sockets.Socket) bool {
		return s.State == "LISTEN" || s.State == "UNCONN"
	})
	if err != nil {
		return err
	}
	return printSockets(c, socks, format, lo, hi, false)
}

func who(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("who takes one PORT, e.g. 'conntrace who 8080'")
	}
	port, err := parsePort("port", c.Args().First())
	if err != nil {
		return err
	}
	socks, format, lo, hi, err := snapshot(c, func(s *sockets.Socket) bool { return s.LPort == port || s.RPort == port })
	if err != nil {
		return err
	}
	if len(socks) == 0 {
		return fmt.Errorf("nothing holds port %d (TCP or UDP)", port)
	}
	return printSockets(c, socks, format, lo, hi, true)
}

// printSockets writes one line per socket and process.
func printSockets(c *cli.Context, socks []sockets.Socket, format output.Format, lo, hi uint16, peers bool) error {
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	if format == output.Text {
		header := []byte("PROTO STATE       LOCAL                          ")
		if peers {
			header = append(header, "REMOTE                         "...)
		}
		header = append(header, "CLASS       PID     COMM             CONTAINER\n"...)
		w.Write(header)
	}
	var line []byte
	for i := range socks {
		s := &socks[i]
		procs := s.Procs
		if len(procs) == 0 {
			procs = []sockets.Proc{{}}
		}
		class := services.Class(s.LPort, lo, hi)
		service := services.Lookup(s.Proto, s.LPort)
		for _, p := range procs {
			if format == output.JSON {
				line = appendSocketJSON(line[:0], s, p, class, service, peers)
			} else {
				line = appendSocketText(line[:0], s, p, class, service, peers)
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
	}
	return nil
}

func appendSocketJSON(dst []byte, s *sockets.Socket, p sockets.Proc, class, service string, peers bool) []byte {
	dst = fmt.Appendf(dst, `{"proto":%q,"state":%q,"laddr":%q,"lport":%d`, s.Proto, s.State, s.LAddr, s.LPort)
	if peers {
		dst = fmt.Appendf(dst, `,"raddr":%q,"rport":%d`, s.RAddr, s.RPort)
	}
	dst = fmt.Appendf(dst, `,"class":%q,"service":%q,"pid":%d,"comm":`, class, service, p.PID)
	dst = output.AppendJSONString(dst, p.Comm)
	dst = output.AppendJSONContainer(dst, p.Container)
	return fmt.Appendf(dst, `,"uid":%d,"inode":%d}`+"\n", s.UID, s.Inode)
}

func appendSocketText(dst []byte, s *sockets.Socket, p sockets.Proc, class, service string, peers bool) []byte {
	start := len(dst)
	dst = output.Pad(append(dst, s.Proto...), start, 6)
	dst = output.Pad(append(dst, s.State...), start, 18)
	dst = output.AppendAddrPort(dst, s.LAddr, s.LPort)
	if service != "" {
		dst = append(dst, '/')
		dst = append(dst, service...)
	}
	end := 49
	dst = output.Pad(dst, start, end)
	if peers {
		if s.RPort != 0 {
			dst = output.AppendAddrPort(dst, s.RAddr, s.RPort)
		} else {
			dst = append(dst, '*')
		}
		end += 31
		dst = output.Pad(dst, start, end)
	}
	dst = output.Pad(append(dst, class...), start, end+12)
	if p.PID == 0 {
		dst = append(dst, '-')
	} else {
		dst = strconv.AppendUint(dst, uint64(p.PID), 10)
	}
	dst = output.Pad(dst, start, end+20)
	dst = output.AppendTextSafe(dst, p.Comm)
	dst = output.Pad(dst, start, end+37)
	if p.Container != nil {
		dst = output.AppendTextSafe(dst, p.Container.Label())
	} else {
		dst = append(dst, '-')
	}
	return append(dst, '\n')
}
