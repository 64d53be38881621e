package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/xtaci/kcp-go/v5"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/rudp"
)

// msgConn is one end of a reliable, ordered message connection. What Recv returns
// is valid until the next Recv.
type msgConn interface {
	Send(p []byte) error
	Recv() ([]byte, error)
}

// pair is a connected client and server end of one transport on loopback.
type pair struct {
	client, server msgConn
	close          func()
	cipher         string // the transport's cipher, as negotiated where it negotiates
}

// transport builds a pair; loss is the share of datagrams each end drops on
// receipt (the userspace loss model; the same for every transport).
type transport struct {
	name string
	dial func(ctx context.Context, loss float64) (*pair, error)
}

var transports = []transport{
	{"natpass", dialNatpass},
	{"kcp-go", dialKCP},
	{"quic-go", dialQUIC},
}

// natpass: a rendezvous server and two nodes on loopback, encrypted (Noise IK;
// AES-256-GCM when both CPUs have AES hardware, else ChaCha20-Poly1305), rudp
// reliable-ordered on lane 0. With natpassBuffers (the -natpass-buffers flag, on by
// default) each node has driver.Config.RecycleBuffers and Recv releases the
// previous message at the next call, as the streams below reuse their read
// buffer: received messages then cost no allocation.

var natpassBuffers = true

type natpassEnd struct {
	n    *driver.Node
	c    *driver.Conn
	prev driver.Message // the last message Recv returned, released at the next
}

func (e *natpassEnd) Send(p []byte) error {
	return e.c.SendContext(context.Background(), 0, rudp.ReliableOrdered, p)
}

func (e *natpassEnd) Recv() ([]byte, error) {
	e.prev.Release()
	m, err := e.c.Recv(context.Background())
	e.prev = m
	return m.Data, err
}

func dialNatpass(ctx context.Context, loss float64) (*pair, error) {
	return dialNatpassWith(ctx, loss, natpassBuffers)
}

// dialNatpassWith is dialNatpass with both nodes' driver.Config.RecycleBuffers
// set to recycle.
func dialNatpassWith(ctx context.Context, loss float64, recycle bool) (*pair, error) {
	srv, err := driver.ListenServer(driver.ServerConfig{Listen: "127.0.0.1:0", AltAddr: "127.0.0.2:0", InsecureDev: true})
	if err != nil {
		return nil, err
	}
	cfg := func(id string) driver.Config {
		return driver.Config{Server: srv.Addr().String(), ID: id, InsecureDev: true, Listen: "127.0.0.1:0",
			DropInbound: loss, RecycleBuffers: recycle}
	}
	a, err := driver.Listen(ctx, cfg("client"))
	if err != nil {
		srv.Close()
		return nil, err
	}
	b, err := driver.Listen(ctx, cfg("server"))
	if err != nil {
		a.Close()
		srv.Close()
		return nil, err
	}
	accepted := make(chan *driver.Conn, 1)
	go func() {
		c, _ := b.Accept(ctx)
		accepted <- c
	}()
	ca, err := a.Connect(ctx, "server")
	cb := <-accepted
	closeAll := func() { a.Close(); b.Close(); srv.Close() }
	if err != nil || cb == nil {
		closeAll()
		return nil, fmt.Errorf("natpass connect: %v", err)
	}
	// natpass starts on the relay and moves to the direct path once punching
	// confirms it; the comparison is of the transports, so it waits for the direct
	// path, as the others are measured on theirs.
	for deadline := time.Now().Add(10 * time.Second); ca.Path().Kind != driver.PathDirect || cb.Path().Kind != driver.PathDirect; {
		if time.Now().After(deadline) {
			closeAll()
			return nil, fmt.Errorf("natpass: no direct path on loopback after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &pair{client: &natpassEnd{n: a, c: ca}, server: &natpassEnd{n: b, c: cb}, close: closeAll, cipher: "Noise IKpsk2, AES-256-GCM with AES hardware on both ends, else ChaCha20-Poly1305"}, nil
}

// Streams (kcp-go, quic-go) carry messages with a 4-byte length prefix.

type streamEnd struct {
	w   io.Writer
	r   *bufio.Reader
	hdr [4]byte
	buf []byte
	mu  sync.Mutex
}

func newStreamEnd(rw io.ReadWriter) *streamEnd {
	return &streamEnd{w: rw, r: bufio.NewReaderSize(rw, 256<<10)}
}

func (e *streamEnd) Send(p []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	binary.BigEndian.PutUint32(e.hdr[:], uint32(len(p)))
	if _, err := e.w.Write(e.hdr[:]); err != nil {
		return err
	}
	_, err := e.w.Write(p)
	return err
}

func (e *streamEnd) Recv() ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(e.r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[:])
	if cap(e.buf) < int(n) {
		e.buf = make([]byte, n)
	}
	b := e.buf[:n]
	_, err := io.ReadFull(e.r, b)
	return b, err
}

// lossyConn drops a share of received datagrams, as DropInbound does in natpass.
type lossyConn struct {
	net.PacketConn
	loss float64
	mu   sync.Mutex
	rng  *mrand.Rand
}

func newLossyConn(c net.PacketConn, loss float64, seed uint64) net.PacketConn {
	if loss == 0 {
		return c
	}
	return &lossyConn{PacketConn: c, loss: loss, rng: mrand.New(mrand.NewPCG(seed, 5))}
}

func (c *lossyConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, a, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, a, err
		}
		c.mu.Lock()
		drop := c.rng.Float64() < c.loss
		c.mu.Unlock()
		if !drop {
			return n, a, nil
		}
	}
}

func listenLoopback() (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
}

// kcp-go with AES encryption and no FEC, in its "fast" mode (nodelay, 10 ms
// interval, fast resend 2, no congestion window) with 1024-packet windows, as
// kcptun's fast3 profile configures it.
func dialKCP(ctx context.Context, loss float64) (*pair, error) {
	key := make([]byte, 32)
	rand.Read(key)
	block, err := kcp.NewAESBlockCrypt(key)
	if err != nil {
		return nil, err
	}
	sc, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	l, err := kcp.ServeConn(block, 0, 0, newLossyConn(sc, loss, 1))
	if err != nil {
		return nil, err
	}
	cc, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	cli, err := kcp.NewConn3(1, sc.LocalAddr(), block, 0, 0, newLossyConn(cc, loss, 2))
	if err != nil {
		return nil, err
	}
	tune := func(s *kcp.UDPSession) {
		s.SetNoDelay(1, 10, 2, 1)
		s.SetWindowSize(1024, 1024)
		//lint:ignore SA1019 stream mode packs messages into full segments, as its bulk users run it; kcp-go keeps it working
		s.SetStreamMode(true)
		s.SetWriteDelay(false)
		s.SetACKNoDelay(true)
		s.SetMtu(1400)
	}
	tune(cli)
	// The server learns the session from the first segment.
	if _, err := cli.Write([]byte{0, 0, 0, 0}); err != nil {
		return nil, err
	}
	srv, err := l.AcceptKCP()
	if err != nil {
		return nil, err
	}
	tune(srv)
	var first [4]byte
	if _, err := io.ReadFull(srv, first[:]); err != nil {
		return nil, err
	}
	return &pair{client: newStreamEnd(cli), server: newStreamEnd(srv), cipher: "AES (kcp-go block crypt)", close: func() {
		cli.Close()
		srv.Close()
		l.Close()
		sc.Close()
		cc.Close()
	}}, nil
}

// quic-go: TLS 1.3 with a self-signed certificate, one bidirectional stream.
func dialQUIC(ctx context.Context, loss float64) (*pair, error) {
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	sc, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	cc, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	qcfg := &quic.Config{MaxIdleTimeout: time.Minute}
	l, err := quic.Listen(newLossyConn(sc, loss, 3), &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench"}}, qcfg)
	if err != nil {
		return nil, err
	}
	type accepted struct {
		s   *quic.Stream
		c   *quic.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := l.Accept(ctx)
		if err != nil {
			acc <- accepted{err: err}
			return
		}
		s, err := c.AcceptStream(ctx)
		acc <- accepted{s, c, err}
	}()
	conn, err := quic.Dial(ctx, newLossyConn(cc, loss, 4), sc.LocalAddr(),
		&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}, qcfg)
	if err != nil {
		return nil, err
	}
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	// A stream is announced by its first byte.
	if _, err := st.Write([]byte{0, 0, 0, 0}); err != nil {
		return nil, err
	}
	a := <-acc
	if a.err != nil {
		return nil, a.err
	}
	var first [4]byte
	if _, err := io.ReadFull(a.s, first[:]); err != nil {
		return nil, err
	}
	return &pair{client: newStreamEnd(st), server: newStreamEnd(a.s), cipher: tls.CipherSuiteName(conn.ConnectionState().TLS.CipherSuite), close: func() {
		conn.CloseWithError(0, "")
		a.c.CloseWithError(0, "")
		l.Close()
		sc.Close()
		cc.Close()
	}}, nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

var errShort = errors.New("short message")
