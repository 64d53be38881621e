package proto

import "testing"

// benchDataFrame is a bulk fragment's frame as rudp sends it: fragment 37 of a 64 KiB
// message in 56 pieces, lane 0, reliable-ordered.
func benchDataFrame() []byte {
	const total, count, index = 65536, 56, 37
	_, n, _ := FragmentBounds(total, count, index)
	f := RUDPData{Mode: RUDPReliableOrdered, Seq: 4711, Total: total, Count: count, Index: index, Data: make([]byte, n)}
	return f.Append(nil)
}

// BenchmarkRUDPDataDecode is the receiver's per-packet parse of a bulk data frame
// (issue 18): rudp decodes each one once, in validate.
func BenchmarkRUDPDataDecode(b *testing.B) {
	p := benchDataFrame()
	var f RUDPData
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRUDPDataHeaderAppend is the sender's per-packet encoding of a bulk data
// frame without its data bytes (their copy is measured by memmove, not here).
func BenchmarkRUDPDataHeaderAppend(b *testing.B) {
	f := RUDPData{Mode: RUDPReliableOrdered, Seq: 4711, Total: 65536, Count: 56, Index: 37}
	_, n, _ := FragmentBounds(f.Total, f.Count, f.Index)
	f.Data = make([]byte, n)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Append(buf[:0])
	}
}

// BenchmarkRUDPAckDecode is an acknowledgement of a bulk flow with two gaps, decoded
// twice per packet by rudp (validate, then apply).
func BenchmarkRUDPAckDecode(b *testing.B) {
	a := RUDPAck{DelayMicros: 1500, Ranges: []RUDPAckRange{{Smallest: 90200, Largest: 90310}, {Smallest: 90100, Largest: 90190}, {Smallest: 89000, Largest: 90050}}}
	p := a.Append(nil)
	var f RUDPAck
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Decode(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsumeVarint decodes a packet number (4 bytes on the wire past 16383
// packets), rudp's first parse of every packet.
func BenchmarkConsumeVarint(b *testing.B) {
	p := AppendVarint(nil, 1_000_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ConsumeVarint(p); err != nil {
			b.Fatal(err)
		}
	}
}
