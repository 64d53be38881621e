package rendezvous

import (
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
	"github.com/natpass/natpass/relayframe"
)

// Fuzz input format for FuzzRelay: records
//
//	ctrl u8 ‖ len u8 ‖ payload (len bytes, cut short at the end of the input)
//
// on a server where alice and bob are registered, introduced and hold linked
// channels. ctrl bits 0–1 pick the source (alice, bob, a stranger, alice's IP on
// another port), bit 2 the local socket (primary or alt-port), bits 3–4 what the
// payload is: 0 raw datagram; 1 relay-send on alice's channel; 2 on bob's; 3 a
// relay-allocate of the source's session (or alice's) naming the other with the
// payload as token, except an empty payload means the real token. Bits 5–7 advance
// virtual time by that many 5-second steps, so buckets refill and sessions expire.
var relayFuzzSources = [4]netip.AddrPort{aliceNAT, bobNAT, strangerA, netip.MustParseAddrPort("203.0.113.10:40001")}

// FuzzRelay: whatever arrives, the relay never sends more bytes than it received:
// each relay-send yields at most one datagram of the same size, addressed to a
// registered session's address; every relay-allocate reply is no larger than the
// request; and the relay's totals agree (bytes forwarded ≤ relay-send bytes in).
func FuzzRelay(f *testing.F) {
	rec := func(ctrl byte, p []byte) []byte { return append([]byte{ctrl, byte(len(p))}, p...) }
	f.Add(rec(0x08, []byte("\xe1\x13 hello")))
	f.Add(append(rec(0x09, []byte("ab")), rec(0x10, []byte("cd"))...))
	f.Add(append(rec(0x18, nil), rec(0x19, nil)...))
	f.Add(append(rec(0x0a, []byte("x")), rec(0xe8, []byte("y"))...))
	f.Add(rec(0x00, []byte{0xe1, 0x22, 0x00, 0x01, 0x00}))
	f.Add(rec(0x18, []byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, in []byte) {
		rp := newRelayPair(t, func(c *Config) {
			c.RelaySessionRate = relayframe.ByteRate{BytesPerSecond: 4096, Burst: 4096}
			c.MaxPeers, c.MaxSources, c.MaxRelayChannels = 4, 4, 8 // small tables: fast runs
		})
		h := rp.h
		chA, chB := rp.both(t)
		sessions := map[netip.AddrPort]proto.Session{aliceNAT: rp.alice.Session, bobNAT: rp.bob.Session}
		var relayIn uint64
		for len(in) >= 2 {
			ctrl, n := in[0], int(in[1])
			in = in[2:]
			n = min(n, len(in))
			payload := in[:n]
			in = in[n:]
			h.now = h.now.Add(time.Duration(ctrl>>5) * 5 * time.Second)
			if h.s.Deadline() <= h.now {
				h.s.HandleTimeout(h.now)
				h.drain()
			}
			from := relayFuzzSources[ctrl&3]
			local := srvPrimary
			if ctrl&4 != 0 {
				local = srvAltPort
			}
			var p []byte
			switch ctrl >> 3 & 3 {
			case 0:
				p = payload
			case 1, 2:
				ch := chA
				if ctrl>>3&3 == 2 {
					ch = chB
				}
				p = sendFrame(ch, payload)
			case 3:
				tok, peer, cookie := payload, "bob", rp.alice.Session
				if len(tok) == 0 {
					tok = rp.token
				}
				if c, ok := sessions[from]; ok {
					cookie = c
					if from == bobNAT {
						peer = "alice"
					}
				}
				if len(tok) > proto.MaxRelayTokenLen {
					tok = tok[:proto.MaxRelayTokenLen]
				}
				p = allocateBytes(cookie, 1, peer, tok)
			}
			isSend := false
			if hd, _, err := proto.ParseHeader(p); err == nil && hd.Type == proto.TypeRelaySend {
				isSend = true
				relayIn += uint64(len(p))
			}
			err, out, _ := h.deliver(local, from, p)
			total := 0
			for _, o := range out {
				total += len(o.Payload)
			}
			if isSend {
				if len(out) > 1 || len(out) == 1 && (len(out[0].Payload) != len(p) || err != nil) {
					t.Fatalf("relay-send of %d bytes gave %d datagrams, %d bytes (err %v)", len(p), len(out), total, err)
				}
				if len(out) == 1 {
					ch, _, perr := relayframe.ParseDeliver(out[0].Payload)
					bob, _ := h.s.Peer([]byte("bob"))
					alice, _ := h.s.Peer([]byte("alice"))
					if perr != nil || (out[0].To != bob.Addr && out[0].To != alice.Addr) || out[0].To == from || ch == 0 {
						t.Fatalf("relayed to %v (from %v), channel %d, %v", out[0].To, from, ch, perr)
					}
				}
			}
			if hd, _, err := proto.ParseHeader(p); err == nil && hd.Type == proto.TypeRelayAllocate {
				// One reply to the sender; at most one ready notice to the other
				// registered peer; neither larger than the request.
				for k, o := range out {
					var m proto.RelayAllocated
					bob, _ := h.s.Peer([]byte("bob"))
					alice, _ := h.s.Peer([]byte("alice"))
					notice := k == 1 && m.Parse(o.Payload) == nil && m.Flags == proto.RelayPeerReady && o.To != from &&
						(o.To == bob.Addr || o.To == alice.Addr)
					if k > 1 || len(o.Payload) > len(p) || k == 1 && !notice {
						t.Fatalf("relay-allocate of %d bytes: datagram %d of %d bytes to %v", len(p), k, len(o.Payload), o.To)
					}
				}
			}
		}
		if st := h.s.Stats().Relay; st.BytesForwarded > relayIn {
			t.Fatalf("relay forwarded %d bytes of %d received", st.BytesForwarded, relayIn)
		}
	})
}
