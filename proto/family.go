package proto

import "encoding/binary"

// TypeRegisterFamily is register-family (PROTOCOL.md §5.12): a node registered over
// one IP family binds its socket of the other family to the same session.
const TypeRegisterFamily MsgType = 0x0E

// RegisterFamilyLen is the exact size of a register-family. The request is padded so
// that it is larger than any registered (at most 85 bytes) it gets: its cookie proves
// reception at the registered address, not at this source, so the request pays for
// its reply ([AMP-1], [REGF-1]).
const RegisterFamilyLen = 88

// registerFamilyPadding is the zero padding after the txid.
const registerFamilyPadding = RegisterFamilyLen - HeaderLen - SessionLen - 8

// RegisterFamily (client → server) asks the server to bind the datagram's source, an
// address of the IP family other than the one Session was registered over, to
// Session. The server answers registered (TxID echoed, the same cookie) or error.
type RegisterFamily struct {
	Session Session
	TxID    uint64
}

func (m *RegisterFamily) Append(b []byte) []byte {
	b = AppendHeader(b, TypeRegisterFamily)
	b = append(b, m.Session[:]...)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	var pad [registerFamilyPadding]byte
	return append(b, pad[:]...)
}

// Parse accepts exactly RegisterFamilyLen bytes with zero padding [REGF-1]: a shorter
// packet is ErrShort, a longer one ErrTrailing, a non-zero padding byte ErrMalformed.
func (m *RegisterFamily) Parse(p []byte) error {
	rest, err := body(p, TypeRegisterFamily)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	r.array(m.Session[:])
	m.TxID = r.u64()
	for _, c := range r.bytes(registerFamilyPadding) {
		if c != 0 {
			r.fail(ErrMalformed)
			break
		}
	}
	return r.done()
}
