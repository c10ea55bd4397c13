// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/conntrace/conntrace/tracer/loadgen"
)

const helperEnv = "CONNTRACE_TEST_HELPER"

// Role is what a helper process does: serve (Server), bind a socket and
// hold it (Bind), or else dial.
type Role struct {
	Server bool          // listen and serve Conns connections (a client's reset ends one quietly)
	NS     string        // network namespace path to enter ("" for the current one)
	Addr   string        // server: address to listen on; client: address to dial
	Conns  int           // server: how many connections to serve
	Send   int           // bytes to write on each connection
	Recv   int           // bytes to read on each connection before that
	Pause  time.Duration // client: pause after connecting, before sending; server: before accepting
	Repeat int           // client: connections to make one after another (0: 1)
	WaitGo bool          // client: connect only after Proc.Go; server: accept only after it

	MayFail  bool          // client: a failed dial or read is reported ("failed ENAME"), not an error
	Abort    bool          // after the exchange, close with SO_LINGER 0 (send RST)
	Discard  bool          // server: close each connection as accepted, reading nothing (unread data: RST)
	Hold     int           // client: open this many connections at once (blocking connect(2)) and keep them until Go
	Blocking bool          // client: one blocking connect(2), as C programs do, then close
	Timeout  time.Duration // client: give up dialing after this long (Go closes the socket)
	BindAddr string        // Hold/Blocking client: bind to this address first ("0.0.0.0:0": any port)
	NoPort   bool          // BindAddr: set IP_BIND_ADDRESS_NO_PORT first (the port is chosen at connect)
	// Interrupt: Hold/Blocking client: signal the connecting thread every
	// millisecond while connect(2) blocks (SIGURG, as Go's scheduler
	// does). The kernel restarts the call each time, unseen by the caller.
	Interrupt bool

	Bind      bool // bind a socket to Addr ("bound" or "failed ENAME"), keep it until Go
	Backlog0  bool // Bind with Listen: listen(fd, 0), an accept queue of one
	Listen    bool // Bind: listen on it too
	UID       int  // Bind: drop to this uid (and gid) first, after entering NS (0: stay root)
	ReusePort bool // Bind: set SO_REUSEPORT first
	ReuseAddr bool // Bind: set SO_REUSEADDR first
	// UDP: Bind a UDP socket (else TCP); with Server or alone, a UDP
	// server or client (udp.go).
	UDP bool
	// Connected: UDP client, connect() the socket first (else sendto()).
	Connected bool
	// NoSend: UDP client, send nothing (it connects, with Connected).
	NoSend bool
	// SendOnGo: UDP client, make the socket, say "ready", and send only
	// after Go. Keep: UDP client, hold the socket after sending until Go.
	SendOnGo, Keep bool
	// RcvBuf: UDP server, set SO_RCVBUF to this once bound, read
	// nothing until Go, then read what its buffer holds (udp.go).
	RcvBuf int
	// HTTP3: an HTTP/3 server (with Server) or client of Addr, over
	// QUIC (quic.go).
	HTTP3 bool
	// Share: Bind: start this many more processes of the same name that
	// inherit the socket, as forked workers do ("shared PID..." before
	// "bound").
	Share int
	// Bind with Repeat: bind Repeat fresh sockets one after another,
	// Pause between them, expecting each to fail ("failed ENAME N").
	Inherited bool // a process Share started: hold fd 3 until stdin closes

	// Storm: run tracer/loadgen's storm for this long with Conns dialers
	// on a loopback listener of its own, on Addr if set ("storming", then
	// "stormed N").
	// Not with NS: the storm's threads stay in the process's namespace.
	Storm time.Duration

	// Summary: Hold: say "held N" once all are connected, not
	// "connected" for each.
	Summary bool

	// Rename, if set, is the name (any bytes but NUL, at most 15) the
	// helper process gives itself (/proc/self/comm) before anything else,
	// as a hostile process may.
	Rename []byte
	// Files: open /dev/null this many times (the soft limit on open files
	// raised to the hard one), say "opened", and hold them until Go, as a
	// busy database or proxy holds its descriptors.
	Files int
	// DNS: a client resolves Addr's host name with Go's own resolver
	// (no libc) asking this server ("198.18.0.2:53"), over UDP, says
	// "resolved ADDR" (or "failed ENAME" with MayFail), then dials the
	// first address. Its retry of a truncated answer goes over TCP, as
	// every query does with DNSTCP.
	DNS    string
	DNSTCP bool
	// Thread, if set, is the name the thread that does the work gives
	// itself with prctl(PR_SET_NAME), as Go, Java and nginx workers do;
	// the process keeps its name.
	Thread string
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
	return p.ExpectWithin(t, word, 10*time.Second)
}

// ExpectWithin is Expect with a deadline of d.
func (p *Proc) ExpectWithin(t testing.TB, word string, d time.Duration) string {
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
	case <-time.After(d):
		t.Fatalf("helper %d did not say %q within %v", p.PID, word, d)
	}
	return ""
}

// Line returns the helper's next line.
func (p *Proc) Line(t testing.TB) string {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			t.Fatalf("helper %d exited", p.PID)
		}
		return line
	case <-time.After(10 * time.Second):
		t.Fatalf("helper %d said nothing within 10s", p.PID)
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
	p.WaitWithin(t, 10*time.Second)
}

// WaitWithin is Wait with a deadline of d for the "done".
func (p *Proc) WaitWithin(t testing.TB, d time.Duration) {
	t.Helper()
	p.ExpectWithin(t, "done", d)
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
	if len(r.Rename) > 0 {
		if err := os.WriteFile("/proc/self/comm", r.Rename, 0); err != nil {
			return fmt.Errorf("rename: %w", err)
		}
	}
	if r.Thread != "" {
		return onOtherThread(func() error {
			name, err := unix.BytePtrFromString(r.Thread)
			if err == nil {
				err = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0)
			}
			if err != nil {
				return fmt.Errorf("prctl PR_SET_NAME: %w", err)
			}
			r.Thread = ""
			return r.run()
		})
	}
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
	switch {
	case r.Inherited:
		waitGo()
		return nil
	case r.Files > 0:
		return r.openFiles()
	case r.Storm > 0:
		return r.storm()
	case r.Bind && r.Repeat > 0:
		return r.bindRepeat()
	case r.Bind:
		return r.bind()
	case r.HTTP3 && r.Server:
		return r.serveHTTP3()
	case r.HTTP3:
		return r.getHTTP3()
	case r.UDP && r.Server:
		return r.serveUDP()
	case r.UDP:
		return r.dialUDP()
	case r.Server:
		return r.serve()
	case r.Hold > 0:
		return r.hold()
	case r.Blocking:
		return r.dialBlocking()
	}
	return r.dial()
}

// failed reports an expected failure: "failed ECONNREFUSED".
func (r Role) failed(err error) error {
	if !r.MayFail {
		return err
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		fmt.Printf("failed %s\n", unix.ErrnoName(errno))
	} else {
		fmt.Printf("failed %v\n", err)
	}
	return nil
}

func waitGo() { bufio.NewReader(os.Stdin).ReadString('\n') }

// openFiles holds r.Files descriptors of /dev/null until Go.
func (r Role) openFiles() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise the open files limit to %d: %w", lim.Max, err)
	}
	for range r.Files {
		if _, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("open /dev/null: %w", err)
		}
	}
	fmt.Println("opened")
	waitGo()
	return nil
}

func sockaddr(ap netip.AddrPort) (int, unix.Sockaddr) {
	if ap.Addr().Is4() {
		return unix.AF_INET, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return unix.AF_INET6, &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

// bind binds a raw socket (no SO_REUSEADDR, unlike Go's listeners), and
// keeps it open until released.
func (r Role) bind() error {
	if r.UID != 0 {
		if err := unix.Setgid(r.UID); err != nil {
			return err
		}
		if err := unix.Setuid(r.UID); err != nil {
			return err
		}
	}
	ap, err := netip.ParseAddrPort(r.Addr)
	if err != nil {
		return err
	}
	family, sa := sockaddr(ap)
	typ := unix.SOCK_STREAM
	if r.UDP {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for opt, on := range map[int]bool{unix.SO_REUSEPORT: r.ReusePort, unix.SO_REUSEADDR: r.ReuseAddr} {
		if !on {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, 1); err != nil {
			return err
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		fmt.Printf("failed %s\n", unix.ErrnoName(err.(unix.Errno)))
		return nil
	}
	if r.Listen {
		backlog := 16
		if r.Backlog0 {
			backlog = 0
		}
		if err := unix.Listen(fd, backlog); err != nil {
			return err
		}
	}
	if r.Share > 0 {
		pids, stdins, err := share(fd, r.Share)
		if err != nil {
			return err
		}
		defer runtime.KeepAlive(stdins)
		fmt.Println("shared", strings.Trim(fmt.Sprint(pids), "[]"))
	}
	fmt.Println("bound")
	waitGo()
	return nil
}

// share starts n processes of this one's name that inherit fd as their
// fd 3 and hold it until this one exits: their stdin closes then.
func share(fd, n int) (pids []int, stdins []io.WriteCloser, err error) {
	spec, _ := json.Marshal(Role{Inherited: true})
	dup, err := unix.Dup(fd) // f's to close
	if err != nil {
		return nil, nil, err
	}
	f := os.NewFile(uintptr(dup), "socket")
	defer f.Close()
	for range n {
		// os.Args[0], not os.Executable(): the symlink that names us.
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
		cmd.ExtraFiles = []*os.File{f}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		pids, stdins = append(pids, cmd.Process.Pid), append(stdins, stdin)
	}
	return pids, stdins, nil
}

// bindRepeat binds Repeat fresh sockets to Addr in turn, each closed at
// once, and says how the binds failed: "failed EADDRINUSE 2000".
func (r Role) bindRepeat() error {
	ap, err := netip.ParseAddrPort(r.Addr)
	if err != nil {
		return err
	}
	family, sa := sockaddr(ap)
	var first unix.Errno
	failed := 0
	for range r.Repeat {
		fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = unix.Bind(fd, sa)
		unix.Close(fd)
		var errno unix.Errno
		if !errors.As(err, &errno) || (failed > 0 && errno != first) {
			return fmt.Errorf("bind %s: %v after %d failures", r.Addr, err, failed)
		}
		first = errno
		failed++
		time.Sleep(r.Pause)
	}
	fmt.Printf("failed %s %d\n", unix.ErrnoName(first), failed)
	return nil
}

// storm runs a connection storm ("storming", then "stormed N").
func (r Role) storm() error {
	fmt.Println("storming")
	addr := r.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	res, err := loadgen.Storm(loadgen.Options{Conns: r.Conns, Duration: r.Storm, Addr: addr, Close: "rst"})
	if err != nil {
		return err
	}
	fmt.Printf("stormed %d\n", res.Conns)
	return nil
}

// onOtherThread runs fn on a locked thread that is not the process's
// first (its thread-group leader), and waits for it.
func onOtherThread(fn func() error) error {
	errs := make(chan error, 1)
	var start func()
	start = func() {
		runtime.LockOSThread()
		if unix.Gettid() == unix.Getpid() {
			// Keep the leader's thread busy so the next goroutine
			// gets another one.
			go start()
			<-make(chan struct{})
		}
		errs <- fn()
	}
	go start()
	return <-errs
}

// connectRaw makes one blocking connect(2), as C programs do (Go's
// net.Dial retries some errors, EADDRNOTAVAIL among them).
func (r Role) connectRaw() (int, error) {
	ap, err := netip.ParseAddrPort(r.Addr)
	if err != nil {
		return -1, err
	}
	family, sa := sockaddr(ap)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if r.BindAddr != "" {
		if err := bindFirst(fd, r.BindAddr, r.NoPort); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if r.Interrupt {
		defer interrupt()()
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// interrupt signals this thread every millisecond until the returned
// function is called. Go's handler for SIGURG has SA_RESTART.
func interrupt() (stop func()) {
	runtime.LockOSThread()
	pid, tid := unix.Getpid(), unix.Gettid()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				unix.Tgkill(pid, tid, unix.SIGURG)
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
		runtime.UnlockOSThread()
	}
}

// bindFirst binds fd to addr, as a client that picks its source does.
func bindFirst(fd int, addr string, noPort bool) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	if noPort {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); err != nil {
			return err
		}
	}
	_, sa := sockaddr(ap)
	return unix.Bind(fd, sa)
}

// dialBlocking connects once with connectRaw and closes.
func (r Role) dialBlocking() error {
	fmt.Println("ready")
	fd, err := r.connectRaw()
	if err != nil {
		return r.failed(err)
	}
	unix.Close(fd)
	fmt.Println("connected")
	return nil
}

// hold opens Hold connections at once with connectRaw, reports each
// ("connected" or "failed ENAME"), and closes them all when released.
func (r Role) hold() error {
	fmt.Println("ready")
	if r.WaitGo {
		waitGo()
	}
	var fds []int
	for i := 0; i < r.Hold; i++ {
		fd, err := r.connectRaw()
		if err != nil {
			if err := r.failed(err); err != nil {
				return err
			}
			continue
		}
		if !r.Summary {
			fmt.Println("connected")
		}
		fds = append(fds, fd)
	}
	if r.Summary {
		fmt.Println("held", len(fds))
	}
	waitGo()
	for _, fd := range fds {
		unix.Close(fd)
	}
	return nil
}

func (r Role) serve() error {
	ln, err := net.Listen("tcp", r.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("listening %s\n", ln.Addr())
	time.Sleep(r.Pause)
	if r.WaitGo {
		waitGo()
	}
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
			err := r.exchange(c, true)
			if errors.Is(err, unix.ECONNRESET) {
				err = nil // the client reset it: that is how it ended
			}
			errs <- err
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
	if r.DNS != "" {
		addr, err := r.resolve()
		if err != nil {
			return r.failed(err)
		}
		fmt.Printf("resolved %s\n", addr.Addr())
		r.Addr = addr.String()
	}
	for i := 0; i < max(r.Repeat, 1); i++ {
		c, err := net.DialTimeout("tcp", r.Addr, r.Timeout)
		if err != nil {
			return r.failed(err)
		}
		if r.Repeat == 0 {
			fmt.Printf("connected %s\n", c.LocalAddr())
		}
		time.Sleep(r.Pause)
		if err := r.exchange(c, false); err != nil {
			return r.failed(err)
		}
	}
	return nil
}

// resolve looks Addr's host up with Go's resolver, asking r.DNS.
func (r Role) resolve() (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	// The resolver dials on threads of its own, which are not in the
	// namespace: it gets sockets made here, on the one that is.
	conns := make(chan net.Conn, 1) // "ip4": one query, A
	for range cap(conns) {
		if r.DNSTCP {
			break
		}
		c, err := net.Dial("udp", r.DNS)
		if err != nil {
			return netip.AddrPort{}, err
		}
		defer c.Close()
		conns <- c
	}
	res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if network == "tcp" || r.DNSTCP {
			// A stream: Go frames its messages as TCP's.
			return r.dialInNS("tcp", r.DNS)
		}
		select {
		case c := <-conns:
			return c, nil
		default:
			return nil, errors.New("no more sockets for the resolver")
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := res.LookupNetIP(ctx, "ip4", host)
	if err != nil {
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return netip.AddrPort{}, fmt.Errorf("NXDOMAIN (%v)", err)
		}
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(addrs[0], uint16(p)), nil
}

// dialInNS dials from the role's namespace, on a thread of the calling
// goroutine's that enters it and is left there (the thread ends with
// the goroutine).
func (r Role) dialInNS(network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	if r.NS != "" {
		fd, err := unix.Open(r.NS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			return nil, err
		}
	}
	return net.Dial(network, addr)
}

// exchange: the client sends first; the server reads that, answers, and
// closes after the client did.
func (r Role) exchange(c net.Conn, server bool) error {
	defer c.Close()
	if server && r.Discard {
		return nil
	}
	buf := make([]byte, max(r.Send, r.Recv))
	if !server {
		if _, err := c.Write(buf[:r.Send]); err != nil {
			return err
		}
	}
	if _, err := io.ReadFull(c, buf[:r.Recv]); err != nil {
		return fmt.Errorf("read %d bytes: %w", r.Recv, err)
	}
	if r.Abort {
		c.(*net.TCPConn).SetLinger(0)
		return nil
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

// RequireRoot skips the test under -short (make unit: the tests that
// need neither root nor clang), fails it in CI, which runs as root, when
// not root, and skips it elsewhere: loading BPF programs and creating
// namespaces need root. Call it before touching anything.
func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs root: not run with -short")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("this test needs root, and CI runs as root")
		}
		t.Skip("needs root")
	}
}
