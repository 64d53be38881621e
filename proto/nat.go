package proto

// Dependence is how a NAT's mapping or filtering depends on the remote endpoint
// (RFC 4787 §4.1 for mapping, §5 for filtering).
type Dependence uint8

const (
	DependenceUnknown       Dependence = iota // not measured (yet)
	EndpointIndependent                       // RFC 4787 §4.1 / §5: same for every remote
	AddressDependent                          // depends on the remote IP address only
	AddressAndPortDependent                   // depends on the remote IP address and port
)

var dependenceNames = [...]string{"unknown", "endpoint-independent", "address-dependent", "address-and-port-dependent"}

func (d Dependence) String() string {
	if int(d) < len(dependenceNames) {
		return dependenceNames[d]
	}
	return "invalid"
}

// Allocation is how a NAT picks the external port of a new mapping (RFC 4787 §4.2).
type Allocation uint8

const (
	AllocationUnknown    Allocation = iota // not measured (yet)
	AllocationPreserving                   // external port = internal port when free
	AllocationSequential                   // each new mapping is the previous plus a delta
	AllocationRandom                       // unpredictable
)

var allocationNames = [...]string{"unknown", "preserving", "sequential", "random"}

func (a Allocation) String() string {
	if int(a) < len(allocationNames) {
		return allocationNames[a]
	}
	return "invalid"
}

// The port range a NAT allocates external ports from for sources at or above 1024:
// RFC 4787 §4.2.1 REQ-3 recommends that such a source never be mapped below 1024, and
// a sequential NAT that reaches the top of the range continues at its bottom.
const (
	NATPortMin = 1024
	NATPortMax = 65535
)

// StepPort returns the external port a sequential NAT allocates delta ports after
// port (delta may be k×PortDelta, and negative), wrapping within NATPortMin–NATPortMax
// as the NAT does: the mapping after 65535 with delta 1 is 1024, not 0. A port below
// NATPortMin came from a NAT with some other range, which cannot be guessed: it steps
// without wrapping, and ok is false when the result leaves 1–65535.
func StepPort(port uint16, delta int) (next uint16, ok bool) {
	if port < NATPortMin {
		p := int(port) + delta
		return uint16(p), p > 0 && p <= NATPortMax
	}
	const size = NATPortMax - NATPortMin + 1
	off := ((int(port)-NATPortMin+delta)%size + size) % size
	return uint16(NATPortMin + off), true
}

// Hairpin says whether the NAT forwards a packet sent to its own external address back
// inside (RFC 4787 §6).
type Hairpin uint8

const (
	HairpinUnknown Hairpin = iota
	HairpinYes
	HairpinNo
)

var hairpinNames = [...]string{"unknown", "yes", "no"}

func (h Hairpin) String() string {
	if int(h) < len(hairpinNames) {
		return hairpinNames[h]
	}
	return "invalid"
}

// NATBehavior is what a node measured of the NAT in front of it, and what the server
// passes on to its peers so both pick the same punching strategy.
type NATBehavior struct {
	Mapping    Dependence
	Filtering  Dependence
	Allocation Allocation
	// PortDelta is the step between consecutive external ports; non-zero only for
	// AllocationSequential.
	PortDelta int16
	Hairpin   Hairpin
	// NoTranslation: the node's observed address is one of its host addresses (a
	// public host, possibly behind a stateful firewall).
	NoTranslation bool
}

// NATBehaviorLen is the encoded size of a NATBehavior.
const NATBehaviorLen = 7

const natFlagNoTranslation = 0x01

func appendNATBehavior(b []byte, n NATBehavior) []byte {
	if n.Mapping > AddressAndPortDependent || n.Filtering > AddressAndPortDependent ||
		n.Allocation > AllocationRandom || n.Hairpin > HairpinNo ||
		(n.PortDelta != 0 && n.Allocation != AllocationSequential) {
		panic("proto: invalid NATBehavior")
	}
	var flags byte
	if n.NoTranslation {
		flags |= natFlagNoTranslation
	}
	return append(b, byte(n.Mapping), byte(n.Filtering), byte(n.Allocation), byte(n.Hairpin),
		flags, byte(uint16(n.PortDelta)>>8), byte(n.PortDelta))
}

func (r *reader) natBehavior() NATBehavior {
	n := NATBehavior{
		Mapping:    Dependence(r.u8()),
		Filtering:  Dependence(r.u8()),
		Allocation: Allocation(r.u8()),
		Hairpin:    Hairpin(r.u8()),
	}
	flags := r.u8()
	n.PortDelta = int16(r.u16())
	n.NoTranslation = flags&natFlagNoTranslation != 0
	if r.err == nil && (n.Mapping > AddressAndPortDependent || n.Filtering > AddressAndPortDependent ||
		n.Allocation > AllocationRandom || n.Hairpin > HairpinNo || flags&^natFlagNoTranslation != 0 ||
		(n.PortDelta != 0 && n.Allocation != AllocationSequential)) {
		r.fail(ErrMalformed)
	}
	return n
}

// CandidateKind says where a candidate address came from (DESIGN §6).
type CandidateKind uint8

const (
	CandidateHost            CandidateKind = 1 // a local interface address
	CandidateServerReflexive CandidateKind = 2 // the address the server observed
	CandidatePredicted       CandidateKind = 3 // a guess from the NAT's allocation pattern
)

var candidateNames = [...]string{1: "host", 2: "server-reflexive", 3: "predicted"}

func (k CandidateKind) String() string {
	if int(k) < len(candidateNames) && candidateNames[k] != "" {
		return candidateNames[k]
	}
	return "invalid"
}
