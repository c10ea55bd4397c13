// SPDX-License-Identifier: Apache-2.0

package testnet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// serveHTTP3: an HTTP/3 server (quic-go, a certificate of its own) on
// UDP Addr. It says "bound", answers Conns GET requests with Send bytes
// each, says "served" once they are all answered, and holds its socket
// until Go. quic-go sends with GSO (UDP_SEGMENT) where the kernel has it,
// unless QUIC_GO_DISABLE_GSO is set.
func (r Role) serveHTTP3() error {
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	// The socket is made here, on the thread in the namespace; quic-go
	// uses it from any thread.
	udp, err := net.ListenPacket("udp", r.Addr)
	if err != nil {
		return err
	}
	defer udp.Close()
	tr := &quic.Transport{Conn: udp}
	defer tr.Close()
	ln, err := tr.ListenEarly(http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}), &quic.Config{})
	if err != nil {
		return err
	}
	answered := make(chan struct{}, r.Conns)
	body := make([]byte, r.Send)
	srv := &http3.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(body)
		answered <- struct{}{}
	})}
	go srv.ServeListener(ln)
	defer srv.Close()
	fmt.Println("bound")
	for range r.Conns {
		<-answered
	}
	fmt.Println("served")
	waitGo()
	return nil
}

// getHTTP3: an HTTP/3 client (quic-go) of Addr: one GET of https://Addr/
// on a UDP socket of its own; it closes the connection, says "got N
// LOCAL" (the body's bytes, the socket's address), and with Keep holds
// the socket until Go, so that whatever the server still sends arrives.
func (r Role) getHTTP3() error {
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return err
	}
	defer udp.Close()
	tr := &quic.Transport{Conn: udp}
	defer tr.Close()
	rt := &http3.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the server's own certificate
		Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			to, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			return tr.DialEarly(ctx, to, tlsCfg, cfg)
		},
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+r.Addr+"/", nil)
	if err != nil {
		return err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	rt.Close()
	fmt.Println("got", n, udp.LocalAddr())
	if r.Keep {
		waitGo()
	}
	return nil
}

// selfSigned makes a certificate for the test server.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "conntrace-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
