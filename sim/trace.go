package sim

import (
	"io"
	"net/netip"
	"strconv"

	"github.com/natpass/natpass/proto"
)

// DropReason says why the network dropped a packet.
type DropReason uint8

const (
	DropNone           DropReason = iota
	DropLoss                      // random loss on a link (LinkConfig.Loss)
	DropQueue                     // the link's bandwidth queue was full
	DropBlackhole                 // the link was in an outage window
	DropMTU                       // longer than the link's MTU
	DropTTL                       // the IP TTL ran out at a router or box
	DropNoRoute                   // nobody owns the destination address
	DropNoMapping                 // inbound to a NAT port with no live mapping
	DropFiltered                  // inbound refused by the NAT's or firewall's filtering
	DropHairpin                   // to the NAT's own address, and it does not hairpin
	DropPortsExhausted            // the NAT had no free external port
	DropPartition                 // a Partition window separates sender and receiver
	DropNoSocket                  // no socket open on the destination port
	DropNoMachine                 // the destination host has no machine
	DropBadSource                 // Transmit.From is not a socket of the sending host
	DropFamily                    // source and destination of different families (a socket of one family to the other), or IPv6 at an IPv4 NAT
	dropReasonCount
)

var dropNames = [...]string{"none", "loss", "queue-full", "blackhole", "mtu", "ttl-expired", "no-route",
	"no-mapping", "filtered", "no-hairpin", "ports-exhausted", "partition", "no-socket", "no-machine", "bad-source",
	"family"}

func (r DropReason) String() string {
	if int(r) < len(dropNames) {
		return dropNames[r]
	}
	return "invalid"
}

// TraceKind says what a trace record is about.
type TraceKind uint8

const (
	TraceSend      TraceKind = iota + 1 // a machine transmitted
	TraceTranslate                      // a NAT rewrote the source (outbound) or destination (inbound)
	TraceDeliver                        // handed to a machine
	TraceDrop                           // dropped; see Drop
)

var traceKindNames = [...]string{1: "send", 2: "nat", 3: "recv", 4: "drop"}

func (k TraceKind) String() string {
	if int(k) < len(traceKindNames) && traceKindNames[k] != "" {
		return traceKindNames[k]
	}
	return "invalid"
}

// TraceRecord is one line of the packet trace. Src and Dst are the addresses after
// the step (for TraceTranslate, OldSrc/OldDst are the ones before). The record passed
// to a tracer is reused: copy it to keep it.
type TraceRecord struct {
	At             proto.Instant
	Kind           TraceKind
	Where          string // host or box name
	Src, Dst       netip.AddrPort
	OldSrc, OldDst netip.AddrPort
	Len            int
	TTL            uint8
	Drop           DropReason
}

// AppendText appends the record as one line, without the newline:
//
//	12.000350 recv b         198.51.100.1:4000 > 203.0.113.10:3478 len=20 ttl=63
//	12.000100 nat  nat-a     10.1.0.2:4000 > 203.0.113.10:3478 => 198.51.100.1:4000 > 203.0.113.10:3478
//
// Time is in milliseconds since the simulation's origin.
func (r *TraceRecord) AppendText(b []byte) []byte {
	ms := int64(r.At) / 1e6
	frac := int64(r.At) % 1e6
	if frac < 0 {
		frac = -frac
	}
	b = padLeft(b, strconv.FormatInt(ms, 10), 8, ' ')
	b = append(b, '.')
	b = padLeft(b, strconv.FormatInt(frac, 10), 6, '0')
	b = append(b, ' ')
	b = padRight(b, r.Kind.String(), 5)
	b = padRight(b, r.Where, 10)
	if r.Kind == TraceTranslate {
		b = r.OldSrc.AppendTo(b)
		b = append(b, " > "...)
		b = r.OldDst.AppendTo(b)
		b = append(b, " => "...)
	}
	b = r.Src.AppendTo(b)
	b = append(b, " > "...)
	b = r.Dst.AppendTo(b)
	b = append(b, " len="...)
	b = strconv.AppendInt(b, int64(r.Len), 10)
	b = append(b, " ttl="...)
	b = strconv.AppendUint(b, uint64(r.TTL), 10)
	if r.Kind == TraceDrop {
		b = append(b, ' ')
		b = append(b, r.Drop.String()...)
	}
	return b
}

func (r *TraceRecord) String() string { return string(r.AppendText(nil)) }

// padLeft appends s right-aligned in width, filled with fill.
func padLeft(b []byte, s string, width int, fill byte) []byte {
	for i := len(s); i < width; i++ {
		b = append(b, fill)
	}
	return append(b, s...)
}

// padRight appends s left-aligned in width, always followed by at least one space.
func padRight(b []byte, s string, width int) []byte {
	b = append(b, s...)
	for i := len(s); i < width; i++ {
		b = append(b, ' ')
	}
	if len(s) >= width {
		b = append(b, ' ')
	}
	return b
}

// SetTracer installs f to receive every trace record (nil turns tracing off). With no
// tracer the simulator builds no record and formats nothing.
func (s *Sim) SetTracer(f func(*TraceRecord)) { s.tracer = f }

// TraceTo returns a tracer that writes one line per record to w. Write errors are
// ignored: the trace is a debugging aid.
func TraceTo(w io.Writer) func(*TraceRecord) {
	var line []byte
	return func(r *TraceRecord) {
		line = append(r.AppendText(line[:0]), '\n')
		_, _ = w.Write(line)
	}
}

func (s *Sim) trace(kind TraceKind, where string, p *packet, oldSrc, oldDst netip.AddrPort, why DropReason) {
	s.rec = TraceRecord{
		At: s.now, Kind: kind, Where: where, Src: p.src, Dst: p.dst,
		OldSrc: oldSrc, OldDst: oldDst, Len: len(p.data), TTL: p.ttl, Drop: why,
	}
	s.tracer(&s.rec)
}
