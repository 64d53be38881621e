package proto

import "encoding/binary"

// Sizes of the keyx messages (PROTOCOL.md §6). They are WireGuard's messages
// (whitepaper §5.4) with natpass's two-byte common header in place of WireGuard's
// four-byte type-and-reserved field, so each is two bytes shorter.
const (
	PointLen       = 32 // X25519 public key (ephemeral or static)
	TagLen         = 16 // Poly1305 tag
	MACLen         = 16 // mac1, mac2: keyed BLAKE2s-128
	TimestampLen   = 12 // TAI64N
	CookieLen      = 16 // the cookie τ a responder under load hands out
	CookieNonceLen = 24 // XChaCha20-Poly1305 nonce of a cookie reply

	InitiationLen  = HeaderLen + 4 + PointLen + PointLen + TagLen + TimestampLen + TagLen + 2*MACLen // 146
	ResponseLen    = HeaderLen + 4 + 4 + PointLen + TagLen + 2*MACLen                                // 90
	CookieReplyLen = HeaderLen + 4 + CookieNonceLen + CookieLen + TagLen                             // 62

	// TransportHeaderLen is what precedes the ciphertext of transport data: header,
	// receiver index, counter.
	TransportHeaderLen = HeaderLen + 4 + 8
	// TransportOverhead is the size of transport data minus the size of its plaintext.
	TransportOverhead = TransportHeaderLen + TagLen
	// MaxTransportLen bounds a transport data packet: the largest UDP payload over IPv4.
	MaxTransportLen = 65507
)

// Offsets of mac1 and mac2 in the handshake messages. mac1 covers every byte before
// it, header included; mac2 every byte before mac2 (whitepaper §5.4.4).
const (
	InitiationMAC1Offset = InitiationLen - 2*MACLen
	InitiationMAC2Offset = InitiationLen - MACLen
	ResponseMAC1Offset   = ResponseLen - 2*MACLen
	ResponseMAC2Offset   = ResponseLen - MACLen
)

// Initiation (0x10) is Noise IK's first message, as WireGuard's handshake initiation
// (whitepaper §5.4.2): the initiator's session index, its ephemeral key, its static key
// encrypted, a TAI64N timestamp encrypted, and the two MACs.
type Initiation struct {
	Sender    uint32
	Ephemeral [PointLen]byte
	Static    [PointLen + TagLen]byte
	Timestamp [TimestampLen + TagLen]byte
	MAC1      [MACLen]byte
	MAC2      [MACLen]byte
}

func (m *Initiation) Append(b []byte) []byte {
	b = AppendHeader(b, TypeInitiation)
	b = binary.BigEndian.AppendUint32(b, m.Sender)
	b = append(b, m.Ephemeral[:]...)
	b = append(b, m.Static[:]...)
	b = append(b, m.Timestamp[:]...)
	b = append(b, m.MAC1[:]...)
	return append(b, m.MAC2[:]...)
}

func (m *Initiation) Parse(p []byte) error {
	rest, err := body(p, TypeInitiation)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.Sender = r.u32()
	r.array(m.Ephemeral[:])
	r.array(m.Static[:])
	r.array(m.Timestamp[:])
	r.array(m.MAC1[:])
	r.array(m.MAC2[:])
	return r.done()
}

// Response (0x11) is Noise IK's second message, as WireGuard's handshake response
// (whitepaper §5.4.3): the responder's index, the initiator's index it answers, the
// responder's ephemeral key, an encrypted empty payload, and the two MACs.
type Response struct {
	Sender    uint32
	Receiver  uint32
	Ephemeral [PointLen]byte
	Empty     [TagLen]byte
	MAC1      [MACLen]byte
	MAC2      [MACLen]byte
}

func (m *Response) Append(b []byte) []byte {
	b = AppendHeader(b, TypeResponse)
	b = binary.BigEndian.AppendUint32(b, m.Sender)
	b = binary.BigEndian.AppendUint32(b, m.Receiver)
	b = append(b, m.Ephemeral[:]...)
	b = append(b, m.Empty[:]...)
	b = append(b, m.MAC1[:]...)
	return append(b, m.MAC2[:]...)
}

func (m *Response) Parse(p []byte) error {
	rest, err := body(p, TypeResponse)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.Sender = r.u32()
	m.Receiver = r.u32()
	r.array(m.Ephemeral[:])
	r.array(m.Empty[:])
	r.array(m.MAC1[:])
	r.array(m.MAC2[:])
	return r.done()
}

// CookieReply (0x12) answers a handshake message the responder will not process now
// because it is under load (whitepaper §5.4.7): the sender index of that message, a
// random nonce, and the cookie encrypted with XChaCha20-Poly1305.
type CookieReply struct {
	Receiver uint32
	Nonce    [CookieNonceLen]byte
	Cookie   [CookieLen + TagLen]byte
}

func (m *CookieReply) Append(b []byte) []byte {
	b = AppendHeader(b, TypeCookieReply)
	b = binary.BigEndian.AppendUint32(b, m.Receiver)
	b = append(b, m.Nonce[:]...)
	return append(b, m.Cookie[:]...)
}

func (m *CookieReply) Parse(p []byte) error {
	rest, err := body(p, TypeCookieReply)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.Receiver = r.u32()
	r.array(m.Nonce[:])
	r.array(m.Cookie[:])
	return r.done()
}

// TransportData (0x13) carries one encrypted packet of a session (whitepaper §5.4.6):
// the receiver's session index, the counter that is the AEAD nonce, and the
// ciphertext with its tag. An empty plaintext (a keepalive) leaves only the tag.
// Ciphertext aliases the parsed packet.
type TransportData struct {
	Receiver   uint32
	Counter    uint64
	Ciphertext []byte
}

func (m *TransportData) Append(b []byte) []byte {
	mustLen("transport ciphertext", len(m.Ciphertext), TagLen, MaxTransportLen-TransportHeaderLen)
	b = AppendTransportHeader(b, m.Receiver, m.Counter)
	return append(b, m.Ciphertext...)
}

// AppendTransportHeader appends the bytes of a transport data packet that precede the
// ciphertext, so a sealer can encrypt in place right after them.
func AppendTransportHeader(b []byte, receiver uint32, counter uint64) []byte {
	b = AppendHeader(b, TypeTransportData)
	b = binary.BigEndian.AppendUint32(b, receiver)
	return binary.BigEndian.AppendUint64(b, counter)
}

func (m *TransportData) Parse(p []byte) error {
	if len(p) > MaxTransportLen {
		return ErrTooLong
	}
	rest, err := body(p, TypeTransportData)
	if err != nil {
		return err
	}
	r := reader{b: rest}
	m.Receiver = r.u32()
	m.Counter = r.u64()
	if r.err != nil {
		return r.err
	}
	if len(r.b) < TagLen {
		return ErrShort
	}
	m.Ciphertext = r.b[:len(r.b):len(r.b)]
	return nil
}
