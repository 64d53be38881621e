package rendezvous

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/natpass/natpass/proto"
)

// sharedNAT is the one public address of a carrier-grade NAT: node i is its port
// 1024+i.
func sharedNAT(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("203.0.113.50"), uint16(1024+i))
}

// retryOf parses the single reply of a challenged register.
func retryOf(t *testing.T, out []sent) proto.Retry {
	t.Helper()
	var r proto.Retry
	if len(out) != 1 {
		t.Fatalf("%d replies, want one retry", len(out))
	}
	if err := r.Parse(out[0].Payload); err != nil {
		t.Fatalf("reply %x is no retry: %v", out[0].Payload, err)
	}
	return r
}

func registerWithToken(txid uint64, ticket, token []byte) []byte {
	m := proto.Register{TxID: txid, Ticket: ticket, Token: token}
	return m.Append(nil)
}

// Thousands of nodes behind one address, all at once: the source's bucket admits its
// burst, every other register is challenged, and every repeat with its token is
// admitted in the same instant, up to the proven burst ([SRV-15]).
func TestSharedAddressAdmittedWithTokens(t *testing.T) {
	const n = 3000
	h := newHarness(t, func(c *Config) { c.UnauthRate = Rate{Interval: time.Microsecond, Burst: 4 * n} })
	var tokens [n]proto.Retry
	challenged := 0
	for i := range n {
		err, out, _ := h.deliver(srvPrimary, sharedNAT(i), registerBytes(uint64(i+1), ticketFor(fmt.Sprint("cgn-", i), byte(i))))
		switch {
		case err == nil:
		case errors.Is(err, ErrChallenged):
			tokens[i] = retryOf(t, out)
			if tokens[i].TxID != uint64(i+1) {
				t.Fatalf("node %d: retry txid %d", i, tokens[i].TxID)
			}
			challenged++
		default:
			t.Fatalf("node %d: %v", i, err)
		}
	}
	if challenged != n-DefaultSourceRate.Burst {
		t.Fatalf("%d challenged, want all but the source's burst (%d)", challenged, n-DefaultSourceRate.Burst)
	}
	registered, again := 0, 0
	for i := range n {
		if tokens[i].TxID == 0 {
			continue
		}
		err, out, _ := h.deliver(srvPrimary, sharedNAT(i), registerWithToken(tokens[i].TxID, ticketFor(fmt.Sprint("cgn-", i), byte(i)), tokens[i].Token[:]))
		switch {
		case err == nil:
			registered++
		case errors.Is(err, ErrChallenged):
			if r := retryOf(t, out); r.TxID != tokens[i].TxID {
				t.Fatalf("node %d: retry txid %d", i, r.TxID)
			}
			again++
		default:
			t.Fatalf("node %d with token: %v", i, err)
		}
	}
	st := h.s.Stats()
	if registered != DefaultSourceTokenRate.Burst || again != challenged-registered || st.Admission.ChallengedProven != uint64(again) ||
		st.Admission.TokensValid != uint64(challenged) || st.Sessions != DefaultSourceRate.Burst+registered {
		t.Fatalf("with tokens: %d registered (want the proven burst %d), %d challenged again; stats %+v, %d sessions",
			registered, DefaultSourceTokenRate.Burst, again, st.Admission, st.Sessions)
	}
}

// A token is bound to the source address and port and to its time slot: used from
// another port or address, or two slots later, it counts as invalid and the register
// is treated as tokenless.
func TestTokenBinding(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SourceRate = Rate{Interval: time.Hour, Burst: 1} })
	alice := ticketFor("alice", 1)
	if err, _, _ := h.deliver(srvPrimary, aliceNAT, registerBytes(1, alice)); err != nil {
		t.Fatal(err)
	}
	err, out, _ := h.deliver(srvPrimary, aliceNAT, registerBytes(2, alice))
	if !errors.Is(err, ErrChallenged) {
		t.Fatalf("second register: %v", err)
	}
	tok := retryOf(t, out).Token
	otherPort := netip.AddrPortFrom(aliceNAT.Addr(), aliceNAT.Port()+1)
	otherAddr := netip.AddrPortFrom(netip.MustParseAddr("203.0.113.11"), aliceNAT.Port())
	forged := tok
	forged[5] ^= 1
	wrongSlot := tok
	wrongSlot[0] += 7
	for _, c := range []struct {
		name  string
		from  netip.AddrPort
		token [proto.RetryTokenLen]byte
	}{{"other port", otherPort, tok}, {"forged", aliceNAT, forged}, {"unknown slot", aliceNAT, wrongSlot}} {
		before := h.s.Stats()
		err, _, _ := h.deliver(srvPrimary, c.from, registerWithToken(2, alice, c.token[:]))
		after := h.s.Stats()
		if err == nil || after.Admission.TokensInvalid != before.Admission.TokensInvalid+1 || after.Registered != before.Registered {
			t.Fatalf("%s: err %v, stats %+v", c.name, err, after.Admission)
		}
	}
	// From another address the token is invalid, and that address has a fresh bucket.
	if err, _, _ := h.deliver(srvPrimary, otherAddr, registerWithToken(3, ticketFor("carol", 3), tok[:])); err != nil || h.s.Stats().Admission.TokensInvalid != 4 {
		t.Fatalf("other address: %v, %+v", err, h.s.Stats().Admission)
	}
	// The right source, within the next slot: admitted.
	h.wait(admissionSlot)
	if err, out, _ := h.deliver(srvPrimary, aliceNAT, registerWithToken(2, alice, tok[:])); err != nil || len(out) != 1 {
		t.Fatalf("token in the next slot: %v", err)
	}
	// Two slots after minting it is stale.
	h.wait(admissionSlot)
	if err, _, _ := h.deliver(srvPrimary, aliceNAT, registerWithToken(2, alice, tok[:])); !errors.Is(err, ErrChallenged) || h.s.Stats().Admission.TokensInvalid != 5 {
		t.Fatalf("stale token: %v, %+v", err, h.s.Stats().Admission)
	}
}

// A flood of registers from spoofed sources, each new to the server, with forged
// tickets: beyond the unproven budget each costs one retry and nothing else — no
// per-source entry, no ticket MAC (the BadTicket counter stays), no allocation.
func TestSpoofedFloodCostsOnlyTheChallenge(t *testing.T) {
	const budget = 50
	h := newHarness(t, func(c *Config) {
		c.OpenRegisterRate = Rate{Interval: time.Hour, Burst: budget}
		c.UnauthRate = Rate{Interval: time.Nanosecond, Burst: 1 << 20}
	})
	forged := MintTicket([]byte("not the server's secret, at all"), testTicket("mallory", 9))
	spoofed := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 4000)
	}
	const n = 5000
	for i := range n {
		err, out, _ := h.deliver(srvPrimary, spoofed(i), registerBytes(uint64(i), forged))
		if i < budget {
			if !errors.Is(err, ErrBadTicket) {
				t.Fatalf("register %d within the budget: %v", i, err)
			}
			continue
		}
		if !errors.Is(err, ErrChallenged) || len(out) != 1 || len(out[0].Payload) > len(registerBytes(uint64(i), forged)) {
			t.Fatalf("register %d: %v, %d replies", i, err, len(out))
		}
	}
	st := h.s.Stats()
	if st.BadTicket != budget || st.Sources != budget || st.Admission.ChallengedLoad != n-budget || st.Admission.Retries != n-budget {
		t.Fatalf("bad tickets %d, sources %d (want %d each), stats %+v", st.BadTicket, st.Sources, budget, st.Admission)
	}
	req := registerBytes(1, forged)
	i := n
	allocs := testing.AllocsPerRun(200, func() {
		i++
		_ = h.s.HandleDatagram(h.now, srvPrimary, spoofed(i), req)
		for {
			if _, ok := h.s.PollTransmit(h.now, h.buf); !ok {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("a challenged register allocates %.1f times", allocs)
	}
}

// A retry never exceeds its register ([AMP-1]): a register shorter than a retry
// gets none, and no MAC is computed for it.
func TestNoRetryToShortRegister(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SourceRate = Rate{Interval: time.Hour, Burst: 1} })
	short := registerBytes(1, []byte{1, 2, 3}) // 17 bytes: a well-formed register, no ticket
	if len(short) >= proto.RetryLen {
		t.Fatalf("the short register is %d bytes", len(short))
	}
	_, _, _ = h.deliver(srvPrimary, aliceNAT, short) // the bucket's one token: error 2
	err, out, _ := h.deliver(srvPrimary, aliceNAT, short)
	if !errors.Is(err, ErrAmplification) || len(out) != 0 || h.s.Stats().Admission.Retries != 0 {
		t.Fatalf("short register: %v, %d replies", err, len(out))
	}
}

// Retries are charged to the server-wide reply budget: once it is spent, challenged
// registers are dropped (busy).
func TestRetriesChargeReplyBudget(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.SourceRate = Rate{Interval: time.Hour, Burst: 1}
		c.UnauthRate = Rate{Interval: time.Hour, Burst: 10}
	})
	sentRetries := 0
	for i := range 30 {
		_, out, _ := h.deliver(srvPrimary, aliceNAT, registerBytes(uint64(i), ticketFor("alice", 1)))
		if len(out) == 1 && out[0].Payload[1] == byte(proto.TypeRetry) {
			sentRetries++
		}
	}
	if st := h.s.Stats(); sentRetries != 9 || st.DropBusy != 20 {
		t.Fatalf("%d retries (want 9: the budget less the one registered), %d busy", sentRetries, st.DropBusy)
	}
}
