package proto

import "testing"

func init() {
	add := func(name string, m message, fresh func() message) {
		vectorCases = append(vectorCases, vectorCase{File: "probe", Name: name, Msg: m, New: fresh})
	}
	mac := [ProbeMACLen]byte{0: 0x4d, 1: 0x41, 2: 0x43, 15: 0x01}
	add("probe-controlling", &Probe{Pair: 0x70a1, TxID: 42, Flags: ProbeControlling, MAC: mac},
		func() message { return new(Probe) })
	add("probe-nominate", &Probe{Pair: 0x70a1, TxID: 43, Flags: ProbeControlling | ProbeNominate, MAC: mac},
		func() message { return new(Probe) })
	add("probe-reply-v4", &ProbeReply{Pair: 0x70a1, TxID: 42, Observed: vecV4, MAC: mac},
		func() message { return new(ProbeReply) })
	add("probe-reply-v6", &ProbeReply{Pair: 0x70a1, TxID: 42, Flags: ProbeControlling, Observed: vecV6, MAC: mac},
		func() message { return new(ProbeReply) })
}

func TestProbeLen(t *testing.T) {
	if got := len((&Probe{}).Append(nil)); got != ProbeLen {
		t.Errorf("ProbeLen = %d, encoded %d", ProbeLen, got)
	}
}

func FuzzProbe(f *testing.F)      { fuzzMessage(f, func() message { return new(Probe) }) }
func FuzzProbeReply(f *testing.F) { fuzzMessage(f, func() message { return new(ProbeReply) }) }
