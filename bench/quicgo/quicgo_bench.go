// SPDX-License-Identifier: MIT
//
// quicgo_bench: the quic-go reference of bench/quic.sh (bench_quic), built
// offline from Debian's golang-github-lucas-clemente-quic-go-dev (0.29) in
// GOPATH mode. Both roles are long-running processes, like weftd.
//
// Same work as weft (docs/BENCH.md, bench/bench_quic.c):
//
//   - TLS 1.3, AES-128-GCM (Go picks it first on AES-NI hardware; the
//     negotiated suite is printed and checked by the harness), X25519 only;
//
//   - Ed25519 certificates on both sides, the server requires and checks the
//     client's (weft authenticates both node keys); no session tickets (weft
//     issues none), no address validation (weft's Retry is lifted for the
//     run), ALPN weft/1;
//
//   - 16 MiB connection / 6 MiB stream receive windows (weft's defaults);
//
//   - streams speak weft's built-in types: 0x01 echo, 0x03 discard (the
//     receiver counts and answers the count, u64 big-endian, at FIN), so
//     the client also runs against a weftd;
//
//   - a handshake is counted once a 32-byte echo on a stream of the new
//     connection came back (as weft's POST /v1/quic/handshakes with
//     "echo": the server has then verified the client's Finished and
//     certificate; a close right at the client's handshake completion may
//     leave before its Finished, and the server never completes).
//
//     quicgo_bench server ADDR:PORT          serve until killed; prints "ready"
//     quicgo_bench hs ADDR:PORT N WINDOW     N handshakes, WINDOW in flight
//     quicgo_bench bulk ADDR:PORT BYTES      one stream of BYTES to discard
//
// Clients print one JSON line. Every wait has a deadline.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	quic "github.com/lucas-clemente/quic-go"
)

const (
	stEcho     = 0x01
	stDiscard  = 0x03
	maxWindow  = 1024
	dialTimout = 10 * time.Second
)

func die(f string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "quicgo_bench: "+f+"\n", a...)
	os.Exit(1)
}

func cert() tls.Certificate {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		die("key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "quicgo-bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(48 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		die("certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
}

func tlsConf(server bool) *tls.Config {
	c := &tls.Config{
		MinVersion:             tls.VersionTLS13,
		CurvePreferences:       []tls.CurveID{tls.X25519},
		NextProtos:             []string{"weft/1"},
		Certificates:           []tls.Certificate{cert()},
		SessionTicketsDisabled: true,
		InsecureSkipVerify:     true, // names are not checked; keys are (below)
	}
	if server {
		// Any certificate, but its CertificateVerify signature is checked
		// by crypto/tls (as weft checks the peer's node key signature).
		c.ClientAuth = tls.RequireAnyClientCert
	}
	return c
}

func quicConf() *quic.Config {
	return &quic.Config{
		Versions:                       []quic.VersionNumber{quic.Version1},
		HandshakeIdleTimeout:           dialTimout,
		MaxIdleTimeout:                 30 * time.Second,
		InitialStreamReceiveWindow:     6 << 20,
		MaxStreamReceiveWindow:         6 << 20,
		InitialConnectionReceiveWindow: 16 << 20,
		MaxConnectionReceiveWindow:     16 << 20,
		MaxIncomingStreams:             100,
	}
}

func serveStream(st quic.Stream) {
	defer st.Close()
	var t [1]byte
	st.SetReadDeadline(time.Now().Add(10 * time.Minute))
	if _, err := io.ReadFull(st, t[:]); err != nil || (t[0] != stDiscard && t[0] != stEcho) {
		st.CancelRead(0x101)
		return
	}
	if t[0] == stEcho {
		io.Copy(st, st)
		return
	}
	n, err := io.Copy(io.Discard, st)
	if err != nil {
		return
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	st.Write(b[:])
}

func server(addr string) {
	ln, err := quic.ListenAddr(addr, tlsConf(true), quicConf())
	if err != nil {
		die("listen %s: %v", addr, err)
	}
	fmt.Println("ready")
	for {
		conn, err := ln.Accept(context.Background())
		if err != nil {
			die("accept: %v", err)
		}
		go func(c quic.Connection) {
			for {
				st, err := c.AcceptStream(context.Background())
				if err != nil {
					return
				}
				go serveStream(st)
			}
		}(conn)
	}
}

func dial(pc net.PacketConn, ra *net.UDPAddr, tc *tls.Config) (quic.Connection, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimout)
	defer cancel()
	return quic.DialContext(ctx, pc, ra, "bench", tc, quicConf())
}

// echo: 32 random bytes on an echo stream, back within the dial timeout.
func echo(c quic.Connection) error {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimout)
	defer cancel()
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		return err
	}
	st.SetDeadline(time.Now().Add(dialTimout))
	msg := make([]byte, 33)
	rand.Read(msg[1:])
	msg[0] = stEcho
	if _, err := st.Write(msg); err != nil {
		return err
	}
	st.Close()
	back := make([]byte, 32)
	if _, err := io.ReadFull(st, back); err != nil {
		return err
	}
	if !bytes.Equal(back, msg[1:]) {
		return fmt.Errorf("echo differs")
	}
	return nil
}

// udpSock: the server's address and one UDP socket to dial it from.
func udpSock(addr string) (*net.UDPAddr, *net.UDPConn) {
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		die("address %s: %v", addr, err)
	}
	pc, err := net.ListenUDP("udp", nil)
	if err != nil {
		die("socket: %v", err)
	}
	pc.SetReadBuffer(4 << 20)
	pc.SetWriteBuffer(4 << 20)
	return ra, pc
}

func cipherName(c quic.Connection) string {
	return tls.CipherSuiteName(c.ConnectionState().TLS.CipherSuite)
}

func emit(v map[string]interface{}) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

// hs: n handshakes over one UDP socket (as weft's client dials from its one
// endpoint), window in flight; each a new connection, closed once its
// 32-byte echo came back.
func hs(addr string, n, window int) {
	ra, pc := udpSock(addr)
	tc := tlsConf(false)
	var (
		mu     sync.Mutex
		done   int
		errs   int
		cipher string
		sumHs  time.Duration
		wg     sync.WaitGroup
	)
	jobs := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	t0 := time.Now()
	for w := 0; w < window; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				t := time.Now()
				c, err := dial(pc, ra, tc)
				if err == nil {
					err = echo(c)
					if err != nil {
						c.CloseWithError(0, "")
					}
				}
				mu.Lock()
				if err != nil {
					errs++
					mu.Unlock()
					continue
				}
				done++
				sumHs += time.Since(t)
				if cipher == "" {
					cipher = cipherName(c)
				}
				mu.Unlock()
				c.CloseWithError(0, "done")
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	mean := 0.0
	if done > 0 {
		mean = float64(sumHs.Microseconds()) / float64(done)
	}
	emit(map[string]interface{}{"count": n, "done": done, "errors": errs,
		"elapsed_us": el.Microseconds(), "per_s": float64(done) / el.Seconds(),
		"mean_handshake_us": mean, "cipher": cipher})
}

// bulk: one connection, one discard stream of nbytes (one block written
// repeatedly, as weft's unverified bench stream sends one generated block);
// the time is first byte written -> the peer's count back (weft's figure).
func bulk(addr string, nbytes int64) {
	ra, pc := udpSock(addr)
	c, err := dial(pc, ra, tlsConf(false))
	if err != nil {
		die("dial: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimout)
	st, err := c.OpenStreamSync(ctx)
	cancel()
	if err != nil {
		die("stream: %v", err)
	}
	st.SetDeadline(time.Now().Add(10 * time.Minute))
	blk := make([]byte, 64<<10)
	t0 := time.Now()
	if _, err := st.Write([]byte{stDiscard}); err != nil {
		die("write: %v", err)
	}
	for left := nbytes; left > 0; {
		k := int64(len(blk))
		if left < k {
			k = left
		}
		if _, err := st.Write(blk[:k]); err != nil {
			die("write: %v", err)
		}
		left -= k
	}
	st.Close()
	var b [8]byte
	if _, err := io.ReadFull(st, b[:]); err != nil {
		die("count: %v", err)
	}
	el := time.Since(t0)
	got := int64(binary.BigEndian.Uint64(b[:]))
	emit(map[string]interface{}{"bytes": nbytes, "peer_count": got, "ok": got == nbytes,
		"elapsed_us": el.Microseconds(),
		"mbit_s":     float64(nbytes) * 8 / el.Seconds() / 1e6, "cipher": cipherName(c)})
	c.CloseWithError(0, "done")
}

func atoi(s string, lo, hi int64) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		die("%q: want %d..%d", s, lo, hi)
	}
	return v
}

func main() {
	a := os.Args
	switch {
	case len(a) == 3 && a[1] == "server":
		server(a[2])
	case len(a) == 5 && a[1] == "hs":
		hs(a[2], int(atoi(a[3], 1, 1000000)), int(atoi(a[4], 1, maxWindow)))
	case len(a) == 4 && a[1] == "bulk":
		bulk(a[2], atoi(a[3], 1, 1<<36))
	default:
		fmt.Fprintln(os.Stderr, "usage: quicgo_bench server ADDR:PORT | hs ADDR:PORT N WINDOW | bulk ADDR:PORT BYTES")
		os.Exit(2)
	}
}
