package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/rudp"
)

// runDemo runs a server and two nodes in this process on loopback, connects them,
// exchanges messages and prints a short report:
//
//	natpass demo [--messages N] [--bulk BYTES]
func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", stderr)
	messages := fs.Int("messages", 1000, "reliable messages each way")
	bulk := fs.Int("bulk", 8<<20, "bytes sent one way as a bulk transfer")
	pings := fs.Int("pings", 200, "64-byte ping-pong round trips")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := demo(ctx, stdout, *messages, *bulk, *pings); err != nil {
		fmt.Fprintln(stderr, "natpass demo:", err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, w io.Writer, messages, bulk, pings int) error {
	fmt.Fprintln(w, "natpass demo: a rendezvous server and two nodes, all in this process on loopback")
	srvCfg := driver.ServerConfig{Listen: "127.0.0.1:0", AltAddr: "127.0.0.2:0", InsecureDev: true}
	srv, err := driver.ListenServer(srvCfg)
	if err != nil {
		// 127.0.0.2 is loopback on Linux, not everywhere: go on without it.
		srvCfg.AltAddr = ""
		if srv, err = driver.ListenServer(srvCfg); err != nil {
			return err
		}
	}
	defer srv.Close()
	fmt.Fprintf(w, "  server      %v\n", srv.Addrs())

	nodes := map[string]*driver.Node{}
	for _, id := range []string{"alice", "bob"} {
		start := time.Now()
		n, err := driver.Listen(ctx, driver.Config{Server: srv.Addr().String(), ID: id, InsecureDev: true, Listen: "127.0.0.1:0"})
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		defer n.Close()
		reg := time.Since(start)
		r, err := n.NAT(ctx)
		if err != nil {
			return fmt.Errorf("%s: NAT measurement: %w", id, err)
		}
		fmt.Fprintf(w, "  %-10s  registered in %v at %v; NAT measured in %v: mapping %s, filtering %s, translation %v\n",
			id, reg.Round(time.Microsecond), n.LocalAddr(), time.Since(start).Round(time.Millisecond),
			r.Behavior.Mapping, r.Behavior.Filtering, !r.Behavior.NoTranslation)
		nodes[id] = n
	}
	alice, bob := nodes["alice"], nodes["bob"]

	start := time.Now()
	accepted := make(chan *driver.Conn, 1)
	acceptErr := make(chan error, 1)
	go func() {
		c, err := bob.Accept(ctx)
		if err != nil {
			acceptErr <- err
			return
		}
		accepted <- c
	}()
	ca, err := alice.Connect(ctx, "bob")
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	var cb *driver.Conn
	select {
	case cb = <-accepted:
	case err := <-acceptErr:
		return fmt.Errorf("accept: %w", err)
	}
	fmt.Fprintf(w, "  connect     alice -> bob in %v (strategy %s; the server starts both sides 500 ms after introducing them)\n",
		time.Since(start).Round(time.Millisecond), ca.Strategy())
	// The session can be up on the route of bob's first packet a moment before
	// alice's side confirms the direct path: wait for it, briefly.
	for end := time.Now().Add(2 * time.Second); ca.Path().Kind != driver.PathDirect && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	var srtt time.Duration
	if st, err := ca.Stats(); err == nil && st.LatestRTT > 0 {
		srtt = st.SRTT
	}
	fmt.Fprintf(w, "  %s\n", pathLine(ca.Path(), srv.Addr().String(), srtt))

	// Messages both ways at once, checked for order and content.
	start = time.Now()
	errs := make(chan error, 2)
	for _, pair := range [][2]*driver.Conn{{ca, cb}, {cb, ca}} {
		go func() { errs <- exchange(ctx, pair[0], pair[1], messages) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "  messages    %d each way, reliable-ordered, all in order and intact, in %v\n",
		messages, time.Since(start).Round(time.Millisecond))

	rtts, err := pingPong(ctx, ca, cb, pings)
	if err != nil {
		return err
	}
	if len(rtts) > 0 {
		slices.Sort(rtts)
		fmt.Fprintf(w, "  ping-pong   %d × 64 B: p50 %v, p99 %v\n", len(rtts),
			rtts[len(rtts)/2].Round(time.Microsecond), rtts[len(rtts)*99/100].Round(time.Microsecond))
	}

	if bulk > 0 {
		start = time.Now()
		if err := bulkSend(ctx, ca, cb, bulk); err != nil {
			return err
		}
		el := time.Since(start)
		fmt.Fprintf(w, "  bulk        %d MiB alice -> bob in %v: %.1f MiB/s (encrypted, acknowledged)\n",
			bulk>>20, el.Round(time.Millisecond), float64(bulk)/(1<<20)/el.Seconds())
	}
	st, _ := ca.Stats()
	fmt.Fprintf(w, "  alice rudp  srtt %v, packets sent %d, lost %d, retransmits %d, datagram %d B\n",
		st.SRTT.Round(time.Microsecond), st.PacketsSent, st.PacketsLost, st.Retransmits, st.DatagramSize)
	ss := srv.Stats()
	fmt.Fprintf(w, "  server      %d datagrams in, %d out, %d registered, %d introduction(s)\n",
		ss.DatagramsIn, ss.DatagramsOut, ss.Registered, ss.Introductions)
	fmt.Fprintln(w, "natpass demo: ok")
	return nil
}

func demoMessage(from *driver.Conn, i int) []byte {
	return fmt.Appendf(nil, "message %d from the peer of %s", i, from.Peer())
}

// exchange sends n messages on from and checks that to receives them in order.
func exchange(ctx context.Context, from, to *driver.Conn, n int) error {
	go func() {
		for i := range n {
			if from.SendContext(ctx, 0, rudp.ReliableOrdered, demoMessage(from, i)) != nil {
				return
			}
		}
	}()
	for i := range n {
		m, err := to.Recv(ctx)
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if want := demoMessage(from, i); !bytes.Equal(m.Data, want) {
			return fmt.Errorf("message %d: got %q, want %q", i, m.Data, want)
		}
	}
	return nil
}

// pingPong times n 64-byte round trips a -> b -> a.
func pingPong(ctx context.Context, a, b *driver.Conn, n int) ([]time.Duration, error) {
	echo := make(chan error, 1)
	go func() {
		for range n {
			m, err := b.Recv(ctx)
			if err == nil {
				err = b.Send(0, rudp.ReliableOrdered, m.Data)
			}
			if err != nil {
				echo <- err
				return
			}
		}
		echo <- nil
	}()
	ping := make([]byte, 64)
	rtts := make([]time.Duration, 0, n)
	for i := range n {
		ping[0] = byte(i)
		t := time.Now()
		if err := a.Send(0, rudp.ReliableOrdered, ping); err != nil {
			return nil, err
		}
		m, err := a.Recv(ctx)
		if err != nil {
			return nil, err
		}
		if len(m.Data) != 64 || m.Data[0] != byte(i) {
			return nil, fmt.Errorf("ping %d: wrong echo", i)
		}
		rtts = append(rtts, time.Since(t))
	}
	return rtts, <-echo
}

// bulkSend sends size bytes from a to b and returns once b has them all and a has
// every acknowledgement.
func bulkSend(ctx context.Context, a, b *driver.Conn, size int) error {
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	sent := make(chan error, 1)
	go func() {
		for left := size; left > 0; left -= len(chunk) {
			if err := a.SendContext(ctx, 0, rudp.ReliableOrdered, chunk[:min(left, len(chunk))]); err != nil {
				sent <- err
				return
			}
		}
		sent <- a.Flush(ctx)
	}()
	for got := 0; got < size; {
		m, err := b.Recv(ctx)
		if err != nil {
			return fmt.Errorf("bulk after %d bytes: %w", got, err)
		}
		got += len(m.Data)
	}
	return <-sent
}
