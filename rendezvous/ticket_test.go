package rendezvous

import (
	"errors"
	"testing"

	"github.com/natpass/natpass/proto"
)

var testSecret = []byte("rendezvous test secret 32 bytes!")

const testExpiryUnix = 1798761600 // 2027-01-01T00:00:00Z

func testTicket(id string, key byte) proto.Ticket {
	return proto.Ticket{PeerID: []byte(id), PublicKey: [proto.KeyLen]byte{0: key, 31: key}, ExpiryUnix: testExpiryUnix}
}

func TestTicketMintVerify(t *testing.T) {
	p := MintTicket(testSecret, testTicket("alice", 1))
	got, err := VerifyTicket(testSecret, p, testExpiryUnix-1)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.PeerID) != "alice" || got.PublicKey[0] != 1 || got.ExpiryUnix != testExpiryUnix {
		t.Fatalf("verified %+v", got)
	}
}

// PROTOCOL.md §4.4: the MAC covers every byte before it, so any change anywhere makes
// the ticket bad (code 2) — never valid, never merely "expired".
func TestTicketTamperIsBad(t *testing.T) {
	p := MintTicket(testSecret, testTicket("alice", 1))
	for i := range p {
		q := append([]byte(nil), p...)
		q[i] ^= 0x01
		if _, err := VerifyTicket(testSecret, q, 0); !errors.Is(err, ErrBadTicket) {
			t.Fatalf("byte %d flipped: %v, want ErrBadTicket", i, err)
		}
	}
	if _, err := VerifyTicket([]byte("another secret of the right size"), p, 0); !errors.Is(err, ErrBadTicket) {
		t.Fatalf("foreign secret: %v", err)
	}
	if _, err := VerifyTicket(testSecret, p[:len(p)-1], 0); !errors.Is(err, ErrBadTicket) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestTicketExpiry(t *testing.T) {
	p := MintTicket(testSecret, testTicket("alice", 1))
	if _, err := VerifyTicket(testSecret, p, testExpiryUnix-1); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	if _, err := VerifyTicket(testSecret, p, testExpiryUnix); !errors.Is(err, ErrTicketExpired) {
		t.Fatalf("at expiry: %v, want ErrTicketExpired", err)
	}
	// A forged ticket is bad, not expired, even when its expiry has passed: the MAC
	// is checked first, so a forger learns nothing about the clock.
	bad := append([]byte(nil), p...)
	bad[len(bad)-1] ^= 1
	if _, err := VerifyTicket(testSecret, bad, testExpiryUnix+1); !errors.Is(err, ErrBadTicket) {
		t.Fatalf("forged and expired: %v, want ErrBadTicket", err)
	}
}

func TestTicketBadVersion(t *testing.T) {
	p := MintTicket(testSecret, testTicket("alice", 1))
	p[0] = 2
	if _, err := VerifyTicket(testSecret, p, 0); !errors.Is(err, ErrBadTicket) {
		t.Fatalf("version 2: %v, want ErrBadTicket", err)
	}
}

// Insecure development mode still parses tickets and checks version and expiry; it
// only skips the MAC.
func TestTicketInsecureVerifier(t *testing.T) {
	v := newTicketVerifier(nil)
	tk := testTicket("mallory", 9)
	p := tk.Append(nil) // MAC all zero
	var got proto.Ticket
	if err := v.verify(p, 0, &got); err != nil || string(got.PeerID) != "mallory" {
		t.Fatalf("insecure verify: %v %+v", err, got)
	}
	if err := v.verify(p, testExpiryUnix, &got); !errors.Is(err, ErrTicketExpired) {
		t.Fatalf("insecure, expired: %v", err)
	}
	p[0] = 7
	if err := v.verify(p, 0, &got); !errors.Is(err, ErrBadTicket) {
		t.Fatalf("insecure, version 7: %v", err)
	}
}

func TestTicketVerifierNoAllocs(t *testing.T) {
	v := newTicketVerifier(testSecret)
	p := MintTicket(testSecret, testTicket("alice", 1))
	var tk proto.Ticket
	if n := testing.AllocsPerRun(100, func() { _ = v.verify(p, 0, &tk) }); n != 0 {
		t.Fatalf("verify allocates %v times", n)
	}
}

func TestMintTicketShortSecretPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a 15-byte secret was accepted")
		}
	}()
	MintTicket(make([]byte, MinSecretLen-1), testTicket("alice", 1))
}

// FuzzVerifyTicket: no input panics the verifier, and whatever verifies is a ticket
// that minting its fields reproduces byte for byte.
func FuzzVerifyTicket(f *testing.F) {
	good := MintTicket(testSecret, testTicket("alice", 1))
	f.Add(good)
	f.Add(good[:len(good)-1])
	zeroMAC := testTicket("x", 0)
	f.Add(zeroMAC.Append(nil))
	v := newTicketVerifier(testSecret)
	f.Fuzz(func(t *testing.T, p []byte) {
		var tk proto.Ticket
		if err := v.verify(p, 0, &tk); err != nil {
			return
		}
		if again := MintTicket(testSecret, tk); string(again) != string(p) {
			t.Fatalf("verified ticket does not re-mint:\n  in %x\n out %x", p, again)
		}
	})
}
