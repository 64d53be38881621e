package fuzz

import (
	"github.com/natpass/natpass/proto"
)

// frame is one rudp frame of a packet: its bytes, and the decoded form of the two
// kinds the harnesses look into.
type frame struct {
	raw  []byte
	ack  *proto.RUDPAck
	data *proto.RUDPData
}

// splitPacket decodes an rudp packet into its packet number and frames; ok is false
// when any part does not decode (the receiver then refuses the packet whole).
func splitPacket(p []byte) (pn uint64, frames []frame, ok bool) {
	var h proto.RUDPHeader
	n, err := h.Decode(p)
	if err != nil {
		return 0, nil, false
	}
	for b := p[n:]; len(b) > 0; b = b[n:] {
		f := frame{}
		switch t := proto.RUDPFrameType(b[0]); {
		case t == proto.RUDPPadding:
			n, err = proto.RUDPPaddingLen(b)
		case t == proto.RUDPPing:
			n = 1
		case t == proto.RUDPAckType:
			f.ack = new(proto.RUDPAck)
			n, err = f.ack.Decode(b)
		case t == proto.RUDPMaxDataType:
			n, err = new(proto.RUDPMaxData).Decode(b)
		case t == proto.RUDPCloseType:
			n, err = new(proto.RUDPClose).Decode(b)
		case t == proto.RUDPAckFrequencyType:
			n, err = new(proto.RUDPAckFrequency).Decode(b)
		case t >= proto.RUDPDataFirst && t <= proto.RUDPDataLast:
			f.data = new(proto.RUDPData)
			n, err = f.data.Decode(b)
		default:
			return h.PacketNumber, frames, false
		}
		if err != nil {
			return h.PacketNumber, frames, false
		}
		f.raw = b[:n]
		frames = append(frames, f)
	}
	return h.PacketNumber, frames, true
}

// hideAcks rewrites an rudp packet the node sent to the stand-in so that its ACK
// frames name only packets the stand-in's connection sent: none at or above sent, and
// never forged (the packet number of the fuzzer's packet, which the stand-in's
// connection did not send and may send itself later: without this, the node's
// acknowledgement of the forged packet would tell the stand-in that its own
// packet with that number arrived, and its contents would be lost). An ACK left
// with no range is dropped. Packets that do not decode pass unchanged.
func hideAcks(p []byte, sent uint64, forged uint64, haveForged bool) []byte {
	pn, frames, ok := splitPacket(p)
	if !ok {
		return p
	}
	out := proto.AppendVarint(nil, pn)
	for _, f := range frames {
		if f.ack == nil {
			out = append(out, f.raw...)
			continue
		}
		var keep []proto.RUDPAckRange
		for _, r := range f.ack.Ranges {
			r.Largest = min(r.Largest, sent-1)
			if sent == 0 || r.Smallest > r.Largest {
				continue
			}
			if haveForged && r.Smallest <= forged && forged <= r.Largest {
				if forged < r.Largest {
					keep = append(keep, proto.RUDPAckRange{Smallest: forged + 1, Largest: r.Largest})
				}
				if forged > r.Smallest {
					keep = append(keep, proto.RUDPAckRange{Smallest: r.Smallest, Largest: forged - 1})
				}
				continue
			}
			keep = append(keep, r)
		}
		if len(keep) > proto.RUDPMaxAckRanges {
			keep = keep[:proto.RUDPMaxAckRanges]
		}
		if len(keep) > 0 {
			out = (&proto.RUDPAck{DelayMicros: f.ack.DelayMicros, Ranges: keep}).Append(out)
		}
	}
	if len(out) == proto.VarintLen(pn) {
		// Nothing but acknowledgements of what the stand-in did not send: an
		// empty packet is invalid, so a PING stands in (harmless: it is answered).
		out = append(out, byte(proto.RUDPPing))
	}
	return out
}
