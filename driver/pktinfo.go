package driver

import "net/netip"

// Answering from the address asked (IP_PKTINFO, IPV6_RECVPKTINFO). A socket bound
// to an unspecified address (0.0.0.0, [::]) receives on every address of the host,
// but a plain send leaves from whichever address the kernel's route picks, which
// need not be the one the peer sent to: its NAT or firewall then drops the answer
// as coming from a stranger. Such a socket therefore asks the kernel for each
// datagram's destination address and remembers, per remote address, the last one;
// every send to that remote names it as the source. Sockets bound to a specific
// address need none of this: their sends leave from it.

// maxSourcePeers bounds a socket's table of remote addresses and the local
// address each last reached it on: 16 Ki entries of 44 bytes and map overhead,
// about 2 MiB. A full table forgets an arbitrary entry (counted); a forgotten
// remote is answered from the kernel's choice until it sends again.
const maxSourcePeers = 1 << 14

// noteSource records that from reached s at local address dst. It returns false
// when an entry had to be forgotten to make room. Only the loop (holding its mu) calls
// it.
func (s *socket) noteSource(from netip.AddrPort, dst netip.Addr) (forgot bool) {
	if from == s.lastTo && dst == s.lastSrc && dst.IsValid() {
		return false // the table holds it already (lastSrc repeats it)
	}
	if from == s.lastTo {
		s.lastSrc = dst
	}
	if old, ok := s.sources[from]; ok {
		if old != dst {
			s.sources[from] = dst
		}
		return false
	}
	if s.sources == nil {
		s.sources = map[netip.AddrPort]netip.Addr{}
	}
	if len(s.sources) >= maxSourcePeers {
		for k := range s.sources {
			delete(s.sources, k)
			if k == s.lastTo {
				s.lastSrc = netip.Addr{}
			}
			forgot = true
			break
		}
	}
	s.sources[from] = dst
	return forgot
}

// sourceFor is the local address to send to from, or the zero Addr: the socket
// needs none (bound to a specific address) or to has not been heard from.
func (s *socket) sourceFor(to netip.AddrPort) netip.Addr {
	if !s.pktinfo {
		return netip.Addr{}
	}
	if to == s.lastTo && s.lastSrc.IsValid() {
		return s.lastSrc
	}
	src := s.sources[to]
	if src.IsValid() {
		s.lastTo, s.lastSrc = to, src
	}
	return src
}
