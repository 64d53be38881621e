package proto

import "encoding/binary"

// TypeRetry is retry (PROTOCOL.md §5.13): the server's admission challenge to a
// register it will not take without proof that the sender receives at its source.
const TypeRetry MsgType = 0x0F

// RetryTokenLen is the size of an admission token. Its contents are the server's
// business ([RETRY-2]); a node echoes the bytes in its next register (§5.1, [REG-4]).
const RetryTokenLen = 16

// RetryLen is the exact size of a retry: smaller than any register that carries a
// ticket that parses (89 bytes), so the challenge never amplifies ([AMP-1]).
const RetryLen = HeaderLen + 8 + RetryTokenLen

// Retry (server → client) answers a register whose source the server will not admit
// unproven (its per-source budget is spent, or the server is under load): TxID is the
// register's, and the node repeats that register at once with Token in it. Like a
// WireGuard cookie reply or a QUIC Retry it costs the server no state: the token is a
// MAC over the source address and a coarse time slot.
type Retry struct {
	TxID  uint64
	Token [RetryTokenLen]byte
}

func (m *Retry) Append(b []byte) []byte {
	b = AppendHeader(b, TypeRetry)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	return append(b, m.Token[:]...)
}

// Parse accepts exactly RetryLen bytes [RETRY-1]: fewer is ErrShort, more ErrTrailing.
// No token value is malformed: the bytes are opaque to the node.
func (m *Retry) Parse(p []byte) error {
	rest, err := body(p, TypeRetry)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.TxID = r.u64()
	r.array(m.Token[:])
	return r.done()
}
