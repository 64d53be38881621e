package proto

import "testing"

func FuzzInitiation(f *testing.F)  { fuzzMessage(f, func() message { return new(Initiation) }) }
func FuzzResponse(f *testing.F)    { fuzzMessage(f, func() message { return new(Response) }) }
func FuzzCookieReply(f *testing.F) { fuzzMessage(f, func() message { return new(CookieReply) }) }
func FuzzTransportData(f *testing.F) {
	for _, c := range openEndedVectorCases {
		f.Add(c.Msg.Append(nil))
	}
	fuzzMessage(f, func() message { return new(TransportData) })
}
