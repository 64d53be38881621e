package keyx

import (
	"crypto/ecdh"
	"io"

	"github.com/natpass/natpass/proto"
)

// Identity is a node's static key pair with what every handshake precomputes from it.
// Counters of the expensive work it did are exported for tests and metrics.
type Identity struct {
	private *ecdh.PrivateKey
	public  PublicKey

	// chainKey0 = HASH(CONSTRUCTION) and hash0 = HASH(chainKey0 ‖ IDENTIFIER) start
	// every handshake (whitepaper §5.4.2), one of each per suite since the suite is
	// part of CONSTRUCTION. responderHash mixes in our own public key: the starting
	// hash of every initiation sent to us.
	chainKey0, hash0, responderHash [proto.NumSuites][KeyLen]byte
	// mac1Key = HASH(LABEL_MAC1 ‖ our public key) verifies mac1 of messages to us;
	// cookieKey = HASH(LABEL_COOKIE ‖ our public key) encrypts our cookie replies.
	mac1Key, cookieKey [KeyLen]byte

	sym *symmetric

	// DHOps counts X25519 operations (key generation included) done for handshakes:
	// the cost an attacker would like to impose.
	DHOps uint64
}

// NewIdentity precomputes the handshake constants for a static private key.
func NewIdentity(priv PrivateKey) *Identity {
	id := &Identity{private: ecdhKey(&priv), sym: newSymmetric()}
	id.public = PublicKey(id.private.PublicKey().Bytes())
	for s := range Suite(proto.NumSuites) {
		id.chainKey0[s] = hashOf([]byte(ConstructionOf(s)), nil)
		id.hash0[s] = hashOf(id.chainKey0[s][:], []byte(Identifier))
		id.responderHash[s] = hashOf(id.hash0[s][:], id.public[:])
	}
	id.mac1Key = hashOf([]byte(labelMAC1), id.public[:])
	id.cookieKey = hashOf([]byte(labelCookie), id.public[:])
	return id
}

// PublicKey returns the identity's static public key.
func (id *Identity) PublicKey() PublicKey { return id.public }

func (id *Identity) dh(priv *ecdh.PrivateKey, pub *PublicKey) ([KeyLen]byte, error) {
	id.DHOps++
	return dh(priv, pub)
}

// newEphemeral draws an ephemeral key pair: one base-point multiplication.
func (id *Identity) newEphemeral(r io.Reader) (*ecdh.PrivateKey, PublicKey, error) {
	k, err := NewPrivateKey(r)
	if err != nil {
		return nil, PublicKey{}, err
	}
	id.DHOps++
	priv := ecdhKey(&k)
	clear(k[:])
	return priv, PublicKey(priv.PublicKey().Bytes()), nil
}

// PeerKey is what an identity knows about one remote static key: the key, the
// optional pre-shared key, and what the handshake can compute once per peer.
type PeerKey struct {
	public PublicKey
	psk    PresharedKey
	// staticShared = DH(our static, their static), the same in every handshake with
	// this peer, so computed once (whitepaper §5.4.2, "ss").
	staticShared [KeyLen]byte
	// initiatorHash is hash0 mixed with the peer's public key: the starting hash of
	// every initiation we send it, per suite.
	initiatorHash [proto.NumSuites][KeyLen]byte
	// mac1Key and cookieKey are derived from the peer's public key: mac1 of messages
	// we send it, and decryption of its cookie replies.
	mac1Key, cookieKey [KeyLen]byte
}

// NewPeerKey precomputes what a handshake with remote needs. It fails with
// ErrLowOrder if remote is a low-order point.
func (id *Identity) NewPeerKey(remote PublicKey, psk PresharedKey) (*PeerKey, error) {
	ss, err := dh(id.private, &remote)
	if err != nil {
		return nil, err
	}
	k := &PeerKey{
		public:       remote,
		psk:          psk,
		staticShared: ss,
		mac1Key:      hashOf([]byte(labelMAC1), remote[:]),
		cookieKey:    hashOf([]byte(labelCookie), remote[:]),
	}
	for s := range Suite(proto.NumSuites) {
		k.initiatorHash[s] = hashOf(id.hash0[s][:], remote[:])
	}
	return k, nil
}

// PublicKey returns the peer's static public key.
func (p *PeerKey) PublicKey() PublicKey { return p.public }

// handshakeState says how far a Handshake has come.
type handshakeState uint8

const (
	stateEmpty              handshakeState = iota
	stateInitiationSent                    // initiator: waiting for the response
	stateInitiationConsumed                // responder: may create the response
	stateComplete                          // both: TransportKeys may be taken
)

// Handshake is one run of Noise_IKpsk2 on either side: the chaining key and hash of
// the Noise symmetric state plus the ephemeral keys. It sees only the Noise fields of
// the messages (ephemeral, static, timestamp, empty); indexes and MACs are the
// Endpoint's. Each method either completes its step or returns an error and leaves
// the Handshake as it was.
type Handshake struct {
	state     handshakeState
	initiator bool
	suite     Suite
	peer      *PeerKey
	chainKey  [KeyLen]byte // Noise ck
	hash      [KeyLen]byte // Noise h
	// ephemeral is our ephemeral private key. crypto/ecdh keeps its bytes where Go
	// offers no way to wipe them; Erase drops the only reference.
	ephemeral *ecdh.PrivateKey
	// remoteEphemeral is the peer's ephemeral public key (responder side).
	remoteEphemeral PublicKey
}

// Peer returns the peer of the handshake, or nil before it knows one.
func (hs *Handshake) Peer() *PeerKey { return hs.peer }

// Suite returns the cipher suite of the handshake: the initiator's choice.
func (hs *Handshake) Suite() Suite { return hs.suite }

// Complete reports whether TransportKeys may be called.
func (hs *Handshake) Complete() bool { return hs.state == stateComplete }

func (hs *Handshake) mixHash(s *symmetric, data []byte) { s.hash(&hs.hash, hs.hash[:], data) }

// CreateInitiation runs the initiator's first message (whitepaper §5.4.2; Noise
// tokens e, es, s, ss with the psk2 modifier's extra MixKey on e) in the cipher suite
// m.Suite names (the zero value is ChaChaPoly) and fills the Ephemeral, Static and
// Timestamp fields of m. It panics on a suite this version does not implement.
func (hs *Handshake) CreateInitiation(id *Identity, peer *PeerKey, rand io.Reader, ts Timestamp, m *proto.Initiation) error {
	suite := m.Suite
	if !knownSuites.Has(suite) {
		panic("keyx: CreateInitiation in unknown suite " + suite.String())
	}
	next := Handshake{initiator: true, suite: suite, peer: peer, chainKey: id.chainKey0[suite], hash: peer.initiatorHash[suite]}
	ePriv, ePub, err := id.newEphemeral(rand)
	if err != nil {
		return err
	}
	next.ephemeral = ePriv
	// e: Ci = KDF1(Ci, Ei_pub); Hi = HASH(Hi ‖ Ei_pub).
	id.sym.kdf(next.chainKey[:], ePub[:], &next.chainKey)
	next.mixHash(id.sym, ePub[:])
	// es: (Ci, κ) = KDF2(Ci, DH(Ei_priv, Sr_pub)); static = AEAD(κ, 0, Si_pub, Hi).
	es, err := id.dh(ePriv, &peer.public)
	if err != nil {
		return err
	}
	var key [KeyLen]byte
	id.sym.kdf(next.chainKey[:], es[:], &next.chainKey, &key)
	var static [proto.PointLen + proto.TagLen]byte
	aeadSeal(suite, static[:], &key, id.public[:], next.hash[:])
	next.mixHash(id.sym, static[:])
	// ss: (Ci, κ) = KDF2(Ci, DH(Si_priv, Sr_pub)); timestamp = AEAD(κ, 0, TAI64N, Hi).
	id.sym.kdf(next.chainKey[:], peer.staticShared[:], &next.chainKey, &key)
	var stamp [proto.TimestampLen + proto.TagLen]byte
	aeadSeal(suite, stamp[:], &key, ts[:], next.hash[:])
	next.mixHash(id.sym, stamp[:])
	clear(key[:])
	clear(es[:])

	next.state = stateInitiationSent
	m.Ephemeral = ePub
	m.Static = static
	m.Timestamp = stamp
	*hs = next
	return nil
}

// ConsumeInitiation runs the responder's side of the first message in the suite
// m.Suite names (the caller checks that it accepts that suite). lookup maps the
// decrypted static key to its PeerKey, or nil if the key is not allowed. On success hs
// holds the state for CreateResponse and the initiation's timestamp is returned; the
// caller must check that it is later than the peer's last one before answering.
func (hs *Handshake) ConsumeInitiation(id *Identity, m *proto.Initiation, lookup func(PublicKey) *PeerKey) (Timestamp, error) {
	suite := m.Suite
	if !knownSuites.Has(suite) {
		return Timestamp{}, ErrSuite
	}
	next := Handshake{suite: suite, chainKey: id.chainKey0[suite], hash: id.responderHash[suite]}
	remoteE := PublicKey(m.Ephemeral)
	id.sym.kdf(next.chainKey[:], remoteE[:], &next.chainKey)
	next.mixHash(id.sym, remoteE[:])
	es, err := id.dh(id.private, &remoteE)
	if err != nil {
		return Timestamp{}, err
	}
	var key [KeyLen]byte
	id.sym.kdf(next.chainKey[:], es[:], &next.chainKey, &key)
	clear(es[:])
	var static PublicKey
	if err := aeadOpen(suite, static[:], &key, m.Static[:], next.hash[:]); err != nil {
		return Timestamp{}, err
	}
	next.mixHash(id.sym, m.Static[:])
	peer := lookup(static)
	if peer == nil {
		return Timestamp{}, ErrUnknownPeer
	}
	id.sym.kdf(next.chainKey[:], peer.staticShared[:], &next.chainKey, &key)
	var ts Timestamp
	if err := aeadOpen(suite, ts[:], &key, m.Timestamp[:], next.hash[:]); err != nil {
		return Timestamp{}, err
	}
	next.mixHash(id.sym, m.Timestamp[:])
	clear(key[:])

	next.peer = peer
	next.remoteEphemeral = remoteE
	next.state = stateInitiationConsumed
	*hs = next
	return ts, nil
}

// CreateResponse runs the responder's second message (whitepaper §5.4.3; Noise tokens
// e, ee, se, psk) and fills the Ephemeral and Empty fields of m. It needs a
// Handshake on which ConsumeInitiation succeeded.
func (hs *Handshake) CreateResponse(id *Identity, rand io.Reader, m *proto.Response) error {
	if hs.state != stateInitiationConsumed {
		panic("keyx: CreateResponse without a consumed initiation")
	}
	next := *hs
	ePriv, ePub, err := id.newEphemeral(rand)
	if err != nil {
		return err
	}
	next.ephemeral = ePriv
	id.sym.kdf(next.chainKey[:], ePub[:], &next.chainKey)
	next.mixHash(id.sym, ePub[:])
	ee, err := id.dh(ePriv, &next.remoteEphemeral)
	if err != nil {
		return err
	}
	id.sym.kdf(next.chainKey[:], ee[:], &next.chainKey)
	se, err := id.dh(ePriv, &next.peer.public)
	if err != nil {
		return err
	}
	id.sym.kdf(next.chainKey[:], se[:], &next.chainKey)
	var empty [proto.TagLen]byte
	next.mixPSKAndSeal(id.sym, empty[:], nil)
	clear(ee[:])
	clear(se[:])

	next.state = stateComplete
	m.Ephemeral = ePub
	m.Empty = empty
	*hs = next
	return nil
}

// mixPSKAndSeal is the psk token and the empty payload: (C, τ, κ) = KDF3(C, Q);
// H = HASH(H ‖ τ); empty = AEAD(κ, 0, ε, H); H = HASH(H ‖ empty). With sealed == nil
// it seals into empty; otherwise it checks sealed.
func (hs *Handshake) mixPSKAndSeal(sym *symmetric, empty []byte, sealed []byte) error {
	var tau, key [KeyLen]byte
	sym.kdf(hs.chainKey[:], hs.peer.psk[:], &hs.chainKey, &tau, &key)
	hs.mixHash(sym, tau[:])
	defer clear(key[:])
	if sealed == nil {
		aeadSeal(hs.suite, empty, &key, nil, hs.hash[:])
		hs.mixHash(sym, empty)
		return nil
	}
	if err := aeadOpen(hs.suite, nil, &key, sealed, hs.hash[:]); err != nil {
		return err
	}
	hs.mixHash(sym, sealed)
	return nil
}

// ConsumeResponse runs the initiator's side of the second message. It needs a
// Handshake on which CreateInitiation succeeded.
func (hs *Handshake) ConsumeResponse(id *Identity, m *proto.Response) error {
	if hs.state != stateInitiationSent {
		panic("keyx: ConsumeResponse without a sent initiation")
	}
	next := *hs
	remoteE := PublicKey(m.Ephemeral)
	id.sym.kdf(next.chainKey[:], remoteE[:], &next.chainKey)
	next.mixHash(id.sym, remoteE[:])
	ee, err := id.dh(next.ephemeral, &remoteE)
	if err != nil {
		return err
	}
	id.sym.kdf(next.chainKey[:], ee[:], &next.chainKey)
	se, err := id.dh(id.private, &remoteE)
	if err != nil {
		return err
	}
	id.sym.kdf(next.chainKey[:], se[:], &next.chainKey)
	clear(ee[:])
	clear(se[:])
	if err := next.mixPSKAndSeal(id.sym, nil, m.Empty[:]); err != nil {
		return err
	}
	next.state = stateComplete
	*hs = next
	return nil
}

// TransportKeys derives the session keys of a complete handshake (whitepaper §5.4.5:
// (T_send_i = T_recv_r, T_recv_i = T_send_r) = KDF2(C, ε)) and erases the handshake.
func (hs *Handshake) TransportKeys() (send, recv [KeyLen]byte) {
	if hs.state != stateComplete {
		panic("keyx: TransportKeys before the handshake completed")
	}
	var first, second [KeyLen]byte
	newSymmetric().kdf(hs.chainKey[:], nil, &first, &second)
	initiator := hs.initiator
	hs.Erase()
	if initiator {
		return first, second
	}
	return second, first
}

// Erase zeroes the handshake's secrets and returns it to its empty state.
func (hs *Handshake) Erase() {
	clear(hs.chainKey[:])
	clear(hs.hash[:])
	*hs = Handshake{}
}
