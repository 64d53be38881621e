package lab

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/sim"
)

// Issue 7: end-to-end encryption. Every datagram the server receives or sends is
// inspected while two nodes behind random-symmetric NATs (relay only) exchange their
// messages: none contains a message's plaintext, nor a long-enough piece of one, and
// the relayed frames carry keyx transport or handshake packets only.
func TestRelayedBytesAreCiphertext(t *testing.T) {
	w, err := newWorld(RunConfig{A: "symmetric-random", B: "symmetric-random", Seed: 3, Loss: 0.01, Messages: 50})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Machine: w.pr.Server.Machine()}
	w.pr.Server.Attach(rec)
	w.connect()
	seen := rec.seen
	relayed := 0
	if !w.res.Delivered || w.res.Direct {
		t.Fatalf("want every message through the relay: %+v", w.res)
	}
	pieces := plaintextPieces(50)
	for _, p := range seen {
		h, rest, err := proto.ParseHeader(p)
		if err == nil && (h.Type == proto.TypeRelaySend || h.Type == proto.TypeRelayDeliver) {
			relayed++
			checkKeyxFrame(t, rest)
		}
		checkNoPlaintext(t, pieces, p)
	}
	if relayed < 10 {
		t.Fatalf("only %d relay frames seen: the test did not watch the relay", relayed)
	}
	t.Logf("%d datagrams at the server, %d relay frames, no plaintext", len(seen), relayed)
}

// recorder passes every call through to the server machine and keeps a copy of
// every datagram it receives or sends.
type recorder struct {
	sim.Machine
	seen [][]byte
}

func (r *recorder) HandleDatagram(now proto.Instant, local, from netip.AddrPort, p []byte) error {
	r.seen = append(r.seen, bytes.Clone(p))
	return r.Machine.HandleDatagram(now, local, from, p)
}

func (r *recorder) PollTransmit(now proto.Instant, buf []byte) (proto.Transmit, bool) {
	t, ok := r.Machine.PollTransmit(now, buf)
	if ok {
		r.seen = append(r.seen, bytes.Clone(t.Payload))
	}
	return t, ok
}

// Issue 13: the cluster bus never carries a session's plaintext either. Two nodes on
// two servers of a cluster, relayed across them: every message the bus delivers is
// inspected; relay data carries keyx packets only, and no piece of any message's
// plaintext crosses.
func TestClusterBusCarriesNoPlaintext(t *testing.T) {
	w, err := newWorld(RunConfig{A: "symmetric-random", B: "symmetric-random", Seed: 3, Loss: 0.01, Messages: 50, Servers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var seen [][]byte
	w.bus.Tap(func(_ *sim.BusMember, m sim.ClusterMessage) { seen = append(seen, bytes.Clone(m.Data)) })
	w.connect()
	if !w.res.Delivered || w.res.Direct {
		t.Fatalf("want every message through the relay: %+v", w.res)
	}
	pieces := plaintextPieces(50)
	relayed := 0
	for _, p := range seen {
		if _, _, _, frame, err := proto.ParseClusterRelayData(p); err == nil {
			relayed++
			checkKeyxFrame(t, frame[proto.HeaderLen:])
		}
		checkNoPlaintext(t, pieces, p)
	}
	if relayed < 10 {
		t.Fatalf("only %d relay-data messages seen: the test did not watch the relay", relayed)
	}
	t.Logf("%d bus messages, %d relay data, no plaintext", len(seen), relayed)
}

// plaintextPieces returns every 16-byte window (at steps of 8) of the first n
// messages of both sides.
func plaintextPieces(n int) [][]byte {
	var pieces [][]byte
	for i := 0; i < n; i++ {
		for _, m := range [][]byte{message("a", i), message("b", i)} {
			for off := 0; off+16 <= len(m); off += 8 {
				pieces = append(pieces, m[off:off+16])
			}
		}
	}
	return pieces
}

// checkKeyxFrame checks that the body of a relay frame (channel and packet) carries
// a keyx packet.
func checkKeyxFrame(t *testing.T, body []byte) {
	t.Helper()
	_, inner, err := proto.ParseRelayDataBody(body)
	if err != nil {
		t.Fatalf("unparsable relay frame body %x", body)
	}
	ih, _, err := proto.ParseHeader(inner)
	if err != nil || ih.Type < proto.TypeKeyxFirst || ih.Type > proto.TypeKeyxLast {
		t.Errorf("relay frame carries %x, not a keyx packet", inner[:min(len(inner), 8)])
	}
}

// checkNoPlaintext fails the test if p holds any of pieces.
func checkNoPlaintext(t *testing.T, pieces [][]byte, p []byte) {
	t.Helper()
	for _, piece := range pieces {
		if bytes.Contains(p, piece) {
			t.Fatalf("plaintext %q seen in %x", piece, p)
		}
	}
}
