package testnet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const helperEnv = "CONNTRACE_TEST_HELPER"

// Role is what a helper process does.
type Role struct {
	Server bool          // listen and serve Conns connections; else dial once
	NS     string        // network namespace path to enter ("" for the current one)
	Addr   string        // server: address to listen on; client: address to dial
	Conns  int           // server: how many connections to serve
	Send   int           // bytes to write on each connection
	Recv   int           // bytes to read on each connection before that
	Hold   time.Duration // client: pause after connecting, before sending
	Repeat int           // client: connections to make one after another (0: 1)
	WaitGo bool          // client: connect only after Proc.Go
}

// Proc is a running helper process. Its process name (comm) is the name
// it was started with.
type Proc struct {
	PID   int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
}

// Start runs role in a new process named comm (at most 15 bytes). The
// process is the test binary itself, run through a symlink of that name;
// TestMain must call RunHelper first.
func Start(t testing.TB, comm string, role Role) *Proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), comm)
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(role)
	cmd := exec.Command(link)
	cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &Proc{cmd: cmd, lines: make(chan string, 16)}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", comm, err)
	}
	p.PID = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return p
}

// Expect waits for the helper's next line, which must start with word, and
// returns the rest of it.
func (p *Proc) Expect(t testing.TB, word string) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("helper %d exited while we waited for %q", p.PID, word)
		}
		rest, found := strings.CutPrefix(line, word)
		if !found {
			t.Fatalf("helper %d said %q, want %q", p.PID, line, word)
		}
		return strings.TrimSpace(rest)
	case <-time.After(10 * time.Second):
		t.Fatalf("helper %d did not say %q within 10s", p.PID, word)
	}
	return ""
}

// Go releases a client started with WaitGo.
func (p *Proc) Go(t testing.TB) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatalf("release helper %d: %v", p.PID, err)
	}
}

// Wait waits for the helper to say "done" and exit successfully.
func (p *Proc) Wait(t testing.TB) {
	t.Helper()
	p.Expect(t, "done")
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("helper %d: %v", p.PID, err)
	}
}

// RunHelper does nothing in the test process itself. In a helper process
// it performs the role and exits; call it first in TestMain.
func RunHelper() {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return
	}
	var r Role
	err := json.Unmarshal([]byte(spec), &r)
	if err == nil {
		err = r.run()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %d: %v\n", os.Getpid(), err)
		os.Exit(1)
	}
	fmt.Println("done")
	os.Exit(0)
}

func (r Role) run() error {
	// Sockets are created in the network namespace of the creating thread.
	runtime.LockOSThread()
	if r.NS != "" {
		fd, err := unix.Open(r.NS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", r.NS, err)
		}
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("enter %s: %w", r.NS, err)
		}
		unix.Close(fd)
	}
	if r.Server {
		return r.serve()
	}
	return r.dial()
}

func (r Role) serve() error {
	ln, err := net.Listen("tcp", r.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("listening %s\n", ln.Addr())
	var wg sync.WaitGroup
	errs := make(chan error, r.Conns)
	for i := 0; i < r.Conns; i++ {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- r.exchange(c, true)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (r Role) dial() error {
	fmt.Println("ready")
	if r.WaitGo {
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return fmt.Errorf("wait for go: %w", err)
		}
	}
	for i := 0; i < max(r.Repeat, 1); i++ {
		c, err := net.Dial("tcp", r.Addr)
		if err != nil {
			return err
		}
		if r.Repeat == 0 {
			fmt.Printf("connected %s\n", c.LocalAddr())
		}
		time.Sleep(r.Hold)
		if err := r.exchange(c, false); err != nil {
			return err
		}
	}
	return nil
}

// exchange: the client sends first; the server reads that, answers, and
// closes after the client did.
func (r Role) exchange(c net.Conn, server bool) error {
	defer c.Close()
	buf := make([]byte, max(r.Send, r.Recv))
	if !server {
		if _, err := c.Write(buf[:r.Send]); err != nil {
			return err
		}
	}
	if _, err := io.ReadFull(c, buf[:r.Recv]); err != nil {
		return fmt.Errorf("read %d bytes: %w", r.Recv, err)
	}
	if server {
		if _, err := c.Write(buf[:r.Send]); err != nil {
			return err
		}
		// Wait for the client's FIN so that the client closes first.
		_, err := io.Copy(io.Discard, c)
		return err
	}
	return nil
}

// RequireRoot fails the test in CI, which runs as root, and skips it
// elsewhere: loading BPF programs and creating namespaces need root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root, and CI runs as root")
		}
		t.Skip("needs root")
	}
}
