// SPDX-License-Identifier: MIT
//
// quicgo_dial: dial a weftd with quic-go (Debian's golang-github-lucas-
// clemente-quic-go-dev, 0.29) offering the QUIC versions given, in order
// (quic-go starts with the first; after Version Negotiation it picks the
// first one the server listed). Presents a self-signed Ed25519 client
// certificate (weft requires one), ALPN weft/1, then echoes 32 bytes on a
// weft echo stream (type varint 0x01) and prints the negotiated version.
//
//	quicgo_dial ADDR:PORT draft29,v1     -> "ok version=0x1" (exit 0)
//	quicgo_dial ADDR:PORT draft29        -> "error: ..." (exit 1)
//	quicgo_dial ADDR:PORT v1 forged      -> presents a certificate of one
//	    key (validly self-signed) but signs the TLS CertificateVerify with
//	    another key: a peer claiming a node key it does not hold.
//	quicgo_dial ADDR:PORT v1 bulk=N      -> echoes N random bytes instead
//	    of 32 (written and read back at once, so flow control never
//	    stalls it), checked byte for byte: "ok version=0x1 bulk=N".
//
// Built offline by tests/integration/test_quic_quicgo.sh with
// GOPATH=/usr/share/gocode GO111MODULE=off.
package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"

	quic "github.com/lucas-clemente/quic-go"
)

func die(f string, a ...interface{}) {
	fmt.Printf("error: "+f+"\n", a...)
	os.Exit(1)
}

func main() {
	forged := len(os.Args) == 4 && os.Args[3] == "forged"
	bulk := 32
	if len(os.Args) == 4 && strings.HasPrefix(os.Args[3], "bulk=") {
		n, err := strconv.Atoi(os.Args[3][5:])
		if err != nil || n < 1 || n > 1<<30 {
			die("bulk: %q", os.Args[3])
		}
		bulk = n
	} else if len(os.Args) != 3 && !forged {
		fmt.Fprintln(os.Stderr, "usage: quicgo_dial ADDR:PORT VERSION[,VERSION...] [forged|bulk=N]")
		os.Exit(2)
	}
	names := map[string]quic.VersionNumber{
		"draft29": quic.VersionDraft29, "v2": quic.Version2, "v1": quic.Version1,
	}
	var versions []quic.VersionNumber
	for _, n := range strings.Split(os.Args[2], ",") {
		v, ok := names[n]
		if !ok {
			die("unknown version %q", n)
		}
		versions = append(versions, v)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		die("key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "quic-go"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		die("certificate: %v", err)
	}
	signer := priv
	if forged {
		// crypto/tls signs with PrivateKey without checking it against the
		// certificate's key.
		if _, signer, err = ed25519.GenerateKey(rand.Reader); err != nil {
			die("key: %v", err)
		}
		fmt.Fprintf(os.Stderr, "certificate key %x\n", []byte(pub))
	}
	tlsConf := &tls.Config{
		InsecureSkipVerify: true, // weft authenticates node keys, not names
		NextProtos:         []string{"weft/1"},
		Certificates:       []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: signer}},
	}
	conf := &quic.Config{Versions: versions, HandshakeIdleTimeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := quic.DialAddrContext(ctx, os.Args[1], tlsConf, conf)
	if err != nil {
		die("dial: %v", err)
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		die("stream: %v", err)
	}
	msg := make([]byte, bulk)
	rand.Read(msg)
	wrote := make(chan error, 1)
	go func() {
		_, err := st.Write(append([]byte{0x01}, msg...))
		st.Close()
		wrote <- err
	}()
	back := make([]byte, len(msg))
	st.SetReadDeadline(time.Now().Add(5*time.Second + time.Duration(bulk/100000)*time.Second))
	if _, err := io.ReadFull(st, back); err != nil {
		die("echo: %v", err)
	}
	if err := <-wrote; err != nil {
		die("write: %v", err)
	}
	if !bytes.Equal(back, msg) {
		die("echo differs")
	}
	// quic-go 0.29 keeps the version off its public interface.
	ver := uint32(0)
	if c, ok := conn.(interface{ GetVersion() quic.VersionNumber }); ok {
		ver = uint32(c.GetVersion())
	}
	if bulk != 32 {
		fmt.Printf("ok version=%#x bulk=%d\n", ver, bulk)
		// QUICGO_HOLD=S: keep the connection S seconds (at most 30) after
		// the echo, for a test to read the server's side of it.
		if s, err := strconv.Atoi(os.Getenv("QUICGO_HOLD")); err == nil && s > 0 && s <= 30 {
			os.Stdout.Sync()
			time.Sleep(time.Duration(s) * time.Second)
		}
	} else {
		fmt.Printf("ok version=%#x\n", ver)
	}
	conn.CloseWithError(0, "")
}
