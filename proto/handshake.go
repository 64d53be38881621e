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

// Suite names a keyx cipher suite (PROTOCOL.md §6.1): the AEAD of the Noise
// protocol name Noise_IKpsk2_25519_<AEAD>_BLAKE2s. The zero value is ChaChaPoly, the
// default every implementation has.
type Suite uint8

const (
	// SuiteChaChaPoly: ChaCha20-Poly1305, initiation type 0x10.
	SuiteChaChaPoly Suite = 0
	// SuiteAESGCM: AES-256-GCM, initiation type 0x14.
	SuiteAESGCM Suite = 1
	// NumSuites is one more than the greatest suite this version defines.
	NumSuites = 2
)

func (s Suite) String() string {
	switch s {
	case SuiteChaChaPoly:
		return "ChaChaPoly"
	case SuiteAESGCM:
		return "AESGCM"
	}
	return "suite-" + string(hexDigits[s>>4]) + string(hexDigits[s&0xF])
}

// SuiteSet is a set of suites as one byte: bit i set means Suite i is in it
// (PROTOCOL.md §6.1: 0x01 ChaChaPoly, 0x02 AES-GCM). A receiver ignores bits of
// suites it does not know, so later versions can add suites.
type SuiteSet uint8

// SuitesOf returns the set holding suites.
func SuitesOf(suites ...Suite) SuiteSet {
	var set SuiteSet
	for _, s := range suites {
		set |= 1 << s
	}
	return set
}

// Has reports whether s is in the set.
func (set SuiteSet) Has(s Suite) bool { return s < 8 && set&(1<<s) != 0 }

// initiationType is the message type that carries an initiation in suite s.
func initiationType(s Suite) MsgType {
	switch s {
	case SuiteChaChaPoly:
		return TypeInitiation
	case SuiteAESGCM:
		return TypeInitiationAESGCM
	}
	panic("proto: initiation with unknown suite " + s.String())
}

// Initiation (0x10, or 0x14 in the AES-GCM suite) is Noise IK's first message, as
// WireGuard's handshake initiation (whitepaper §5.4.2): the initiator's session index,
// its ephemeral key, its static key encrypted, a TAI64N timestamp encrypted, and the
// two MACs. Suite is carried by the message type: both types have this one layout.
type Initiation struct {
	Suite     Suite
	Sender    uint32
	Ephemeral [PointLen]byte
	Static    [PointLen + TagLen]byte
	Timestamp [TimestampLen + TagLen]byte
	MAC1      [MACLen]byte
	MAC2      [MACLen]byte
}

// Append encodes m; it panics on a Suite this version does not define.
func (m *Initiation) Append(b []byte) []byte {
	b = AppendHeader(b, initiationType(m.Suite))
	b = binary.BigEndian.AppendUint32(b, m.Sender)
	b = append(b, m.Ephemeral[:]...)
	b = append(b, m.Static[:]...)
	b = append(b, m.Timestamp[:]...)
	b = append(b, m.MAC1[:]...)
	return append(b, m.MAC2[:]...)
}

func (m *Initiation) Parse(p []byte) error {
	h, rest, err := ParseHeader(p)
	if err != nil {
		return err
	}
	switch h.Type {
	case TypeInitiation:
		m.Suite = SuiteChaChaPoly
	case TypeInitiationAESGCM:
		m.Suite = SuiteAESGCM
	default:
		return ErrWrongType
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
