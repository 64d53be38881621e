package rendezvous

import (
	"testing"
	"unsafe"
)

// A relayed frame reads the owner's and the peer's addr and local and writes the
// owner's lastActive: they must lead the session, addr and local in its first cache
// line and lastActive right after, so the frame touches three lines of the two
// sessions rather than five (the slab is page-aligned and a session a whole number
// of lines).
func TestRelayFieldsLeadTheSession(t *testing.T) {
	var s session
	if n := unsafe.Sizeof(s); n%64 != 0 {
		t.Errorf("session is %d bytes, not a whole number of 64-byte lines", n)
	}
	if a, l := unsafe.Offsetof(s.addr), unsafe.Offsetof(s.local); a+unsafe.Sizeof(s.addr) > 64 || l+unsafe.Sizeof(s.local) > 64 {
		t.Errorf("addr at %d and local at %d: not both in the first 64 bytes", a, l)
	}
	if o := unsafe.Offsetof(s.lastActive); o != 64 {
		t.Errorf("lastActive at %d, want 64 (the second line's first field)", o)
	}
}
