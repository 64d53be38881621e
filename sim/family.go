package sim

import "net/netip"

// Family is an IP address family. Packets of one family never cross to the other:
// a socket sends only to addresses of its own family (DropFamily), and a box
// forwards only its own family.
type Family uint8

const (
	IPv4 Family = iota // the zero value: every box and preset that names no family
	IPv6
)

func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// FamilyOf returns a's family. An IPv4-mapped IPv6 address (::ffff:a.b.c.d) counts
// as IPv4, as a dual-stack socket sends it.
func FamilyOf(a netip.Addr) Family {
	if a.Unmap().Is4() {
		return IPv4
	}
	return IPv6
}

// Stack says which address families a preset's host has.
type Stack uint8

const (
	IPv4Only  Stack = iota // the zero value: every preset from before IPv6
	IPv6Only               // an IPv6 address and no IPv4 at all
	DualStack              // both: an IPv4 address behind the IPv4 chain, an IPv6 one behind the IPv6 chain
)

var stackNames = [...]string{"ipv4", "ipv6", "dual-stack"}

func (s Stack) String() string {
	if int(s) < len(stackNames) {
		return stackNames[s]
	}
	return "invalid"
}

// Has reports whether a host of this stack has an address of family f.
func (s Stack) Has(f Family) bool {
	switch s {
	case IPv4Only:
		return f == IPv4
	case IPv6Only:
		return f == IPv6
	}
	return s == DualStack
}

// Families lists the stack's families, IPv6 first: the order a dual-stack node
// prefers direct paths in (DESIGN §14).
func (s Stack) Families() []Family {
	switch s {
	case IPv6Only:
		return []Family{IPv6}
	case DualStack:
		return []Family{IPv6, IPv4}
	}
	return []Family{IPv4}
}

// Automatic IPv6 addresses come from the documentation prefix 2001:db8::/32 (RFC
// 3849): public hosts on the core from 2001:db8::10 up, IPv6 boxes from
// 2001:db8:ffff::1 up, and the inside of the N-th IPv6 box is 2001:db8:N::/64 (its
// hosts from ::2 up, ::1 being the box).
var (
	publicHost6Start = netip.MustParseAddr("2001:db8::10")
	publicBox6Start  = netip.MustParseAddr("2001:db8:ffff::1")
)

// corePublicAddr6 returns a fresh public IPv6 address for a host or a box on the
// core. The next candidate is remembered, so handing out n addresses costs O(n).
func (s *Sim) corePublicAddr6(forBox bool) netip.Addr {
	next := &s.next6Host
	if forBox {
		next = &s.next6Box
	}
	if !next.IsValid() {
		*next = publicHost6Start
		if forBox {
			*next = publicBox6Start
		}
	}
	for {
		a := *next
		*next = a.Next()
		if _, used := s.core.routes[a]; !used {
			return a
		}
	}
}

// inside6Prefix returns the /64 the n-th IPv6 box (counting from 1) hands out.
func inside6Prefix(n int) netip.Prefix {
	a := netip.MustParseAddr("2001:db8::").As16()
	a[4], a[5] = byte(n>>8), byte(n)
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// networkFamily returns the family a network carries, and false for the core, which
// carries both.
func networkFamily(n *Network) (Family, bool) {
	if n.box == nil {
		return IPv4, false
	}
	return n.box.cfg.Family, true
}

// autoAddrOf returns a fresh automatic address of family f for a new member of n; n
// must carry f.
func (s *Sim) autoAddrOf(n *Network, f Family) netip.Addr {
	if nf, ok := networkFamily(n); ok && nf != f {
		panic("sim: network " + n.name + " carries " + nf.String() + ", not " + f.String())
	}
	if f == IPv6 && n == s.core {
		return s.corePublicAddr6(false)
	}
	return s.autoAddr(n)
}

// nextInside6 returns the inside prefix of a new IPv6 box: p when given, else the
// next 2001:db8:N::/64.
func (s *Sim) nextInside6(p netip.Prefix) netip.Prefix {
	if p.IsValid() {
		if !p.Addr().Is6() || p.Addr().Is4In6() {
			panic("sim: IPv6 box with inside prefix " + p.String())
		}
		return p.Masked()
	}
	s.boxes6++
	if s.boxes6 >= 0xffff { // 2001:db8:ffff::/64 holds the boxes' own addresses
		panic("sim: out of IPv6 inside prefixes")
	}
	return inside6Prefix(s.boxes6)
}
