package relayframe

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/natpass/natpass/proto"
)

var (
	testKey  = DeriveTokenKey([]byte("natpass test secret, 32 bytes..."))
	keyAlice = [proto.KeyLen]byte{0: 0x01, 31: 0xaa}
	keyBob   = [proto.KeyLen]byte{0: 0xf0, 31: 0xbb}
)

const testExpiry = 1798761600 // 2027-01-01T00:00:00Z

func TestTokenRoundTrip(t *testing.T) {
	s := NewTokenSigner(testKey)
	in := Token{PairID: 0x0102030405060708, ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyBob}
	p := s.AppendToken(nil, in)
	if len(p) != TokenLen || TokenLen > proto.MaxRelayTokenLen {
		t.Fatalf("token is %d bytes, want %d (≤ %d)", len(p), TokenLen, proto.MaxRelayTokenLen)
	}
	got, err := s.VerifyToken(p, testExpiry-1)
	if err != nil {
		t.Fatal(err)
	}
	if got != in {
		t.Fatalf("verified %+v, minted %+v", got, in)
	}
	if !got.Holds(keyAlice) || !got.Holds(keyBob) || got.Holds([proto.KeyLen]byte{}) {
		t.Fatal("Holds does not name exactly the pair's keys")
	}
}

// Both peers must get the same bytes whichever order the server names them in.
func TestTokenKeyOrderIsCanonical(t *testing.T) {
	s := NewTokenSigner(testKey)
	ab := s.AppendToken(nil, Token{PairID: 9, ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyBob})
	ba := s.AppendToken(nil, Token{PairID: 9, ExpiryUnix: testExpiry, KeyA: keyBob, KeyB: keyAlice})
	if !bytes.Equal(ab, ba) {
		t.Fatalf("key order leaks into the token:\n%x\n%x", ab, ba)
	}
	// A token re-tagged with its keys swapped is not canonical and is refused before
	// the MAC is even computed.
	swapped := append([]byte(nil), ab...)
	copy(swapped[17:49], keyBob[:])
	copy(swapped[49:81], keyAlice[:])
	if _, err := s.VerifyToken(swapped, 0); !errors.Is(err, ErrTokenMalformed) {
		t.Fatalf("swapped keys: %v, want ErrTokenMalformed", err)
	}
}

func TestTokenExpiry(t *testing.T) {
	s := NewTokenSigner(testKey)
	p := s.AppendToken(nil, Token{PairID: 1, ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyBob})
	if _, err := s.VerifyToken(p, testExpiry-1); err != nil {
		t.Fatalf("one second before expiry: %v", err)
	}
	for _, now := range []uint64{testExpiry, testExpiry + 1, 1 << 63} {
		if _, err := s.VerifyToken(p, now); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("at %d: %v, want ErrTokenExpired", now, err)
		}
	}
}

// Any single flipped bit makes the token fail: as malformed (version, key order) or
// as a bad MAC, never as valid and never as merely expired.
func TestTokenTamper(t *testing.T) {
	s := NewTokenSigner(testKey)
	p := s.AppendToken(nil, Token{PairID: 7, ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyBob})
	for i := range p {
		for bit := 0; bit < 8; bit++ {
			q := append([]byte(nil), p...)
			q[i] ^= 1 << bit
			_, err := s.VerifyToken(q, 0)
			if !errors.Is(err, ErrTokenBadMAC) && !errors.Is(err, ErrTokenMalformed) {
				t.Fatalf("byte %d bit %d flipped: %v", i, bit, err)
			}
		}
	}
	for _, n := range []int{0, 1, TokenLen - 1, TokenLen + 1} {
		q := make([]byte, n)
		copy(q, p)
		if _, err := s.VerifyToken(q, 0); !errors.Is(err, ErrTokenMalformed) {
			t.Fatalf("length %d: %v, want ErrTokenMalformed", n, err)
		}
	}
}

func TestTokenForeignKey(t *testing.T) {
	p := NewTokenSigner(testKey).AppendToken(nil, Token{PairID: 1, ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyBob})
	other := NewTokenSigner(DeriveTokenKey([]byte("another server's secret........")))
	if _, err := other.VerifyToken(p, 0); !errors.Is(err, ErrTokenBadMAC) {
		t.Fatalf("token of another server: %v, want ErrTokenBadMAC", err)
	}
	// The token key is derived with a label, so it is not the secret itself: a tag
	// made with the raw secret does not verify.
	var raw [32]byte
	copy(raw[:], "natpass test secret, 32 bytes...")
	if _, err := NewTokenSigner(raw).VerifyToken(p, 0); !errors.Is(err, ErrTokenBadMAC) {
		t.Fatalf("raw secret as token key: %v, want ErrTokenBadMAC", err)
	}
}

func TestTokenNoAllocs(t *testing.T) {
	s := NewTokenSigner(testKey)
	buf := make([]byte, 0, TokenLen)
	tok := Token{PairID: 1, ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyBob}
	p := s.AppendToken(nil, tok)
	if n := testing.AllocsPerRun(100, func() { s.AppendToken(buf[:0], tok) }); n != 0 {
		t.Fatalf("AppendToken allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = s.VerifyToken(p, 0) }); n != 0 {
		t.Fatalf("VerifyToken allocates %v times", n)
	}
}

// FuzzVerifyToken: no input panics the verifier, and an input it accepts is exactly
// what minting its content gives (the token has one encoding).
func FuzzVerifyToken(f *testing.F) {
	s := NewTokenSigner(testKey)
	good := s.AppendToken(nil, Token{PairID: 42, ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyBob})
	f.Add(good)
	f.Add(good[:TokenLen-1])
	f.Add(make([]byte, TokenLen))
	f.Fuzz(func(t *testing.T, p []byte) {
		tok, err := s.VerifyToken(p, 0)
		if err != nil {
			return
		}
		if again := s.AppendToken(nil, tok); !bytes.Equal(again, p) {
			t.Fatalf("accepted token is not canonical:\n  in %x\n out %x", p, again)
		}
	})
}

func BenchmarkVerifyToken(b *testing.B) {
	s := NewTokenSigner(testKey)
	p := s.AppendToken(nil, Token{PairID: 1, ExpiryUnix: testExpiry, KeyA: keyAlice, KeyB: keyBob})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.VerifyToken(p, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTokenGoldenVector pins the token layout (doc of TokenLen, PROTOCOL.md §5.10).
// The tag was checked independently with Python's hmac module:
// HMAC-SHA256(HMAC-SHA256(secret, "natpass relay token key v1"), bytes 0..80).
// Changing one byte here is a wire change.
func TestTokenGoldenVector(t *testing.T) {
	const want = "01" + "0102030405060708" + "000000006b36ec80" +
		"01000000000000000000000000000000000000000000000000000000000000aa" +
		"f0000000000000000000000000000000000000000000000000000000000000bb" +
		"567e3ecb1e615472a3068221f4946f363ab06be7fbf2b174d7b71c7bac21d42f"
	s := NewTokenSigner(DeriveTokenKey([]byte("natpass relay token vector secret")))
	// Keys given in the "wrong" order: the encoding sorts them.
	got := s.AppendToken(nil, Token{PairID: 0x0102030405060708, ExpiryUnix: 1798761600, KeyA: keyBob, KeyB: keyAlice})
	if hex.EncodeToString(got) != want {
		t.Fatalf("token\n got %x\nwant %s", got, want)
	}
}
