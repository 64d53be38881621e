package relayframe

import (
	"errors"
	"math"
	"time"

	"github.com/natpass/natpass/proto"
)

// Table is the relay's forwarding table (PROTOCOL.md §8.4): the channels the server
// has handed out, which two of them form a pair, when each expires, and the byte
// budgets of their holders and of the whole server. It knows nothing of addresses or
// sockets: an owner is a small integer the server gives it (the slot of the session
// that holds the channel), and the server checks a frame's source against that
// session's registered address before it calls Charge.
//
// Inputs: Allocate (a verified relay-allocate), Release (one channel given up),
// DropOwner (a session ended), Expire
// (the clock reached Deadline), Reanchor (the wall clock moved). Hot path: Lookup
// then Charge, once per relay-send; neither allocates nor touches a map.
//
// Bounds, all fixed at NewTable: MaxChannels channels, MaxPerOwner per owner, owners
// 0 … MaxOwners−1. Memory: a 256 KiB channel index, the channel slab, a map of the
// same size keyed by (pair, owner) for Allocate, and one bucket per owner.
//
// Like every natpass machine it reads no clock and is not safe for concurrent use.
type Table struct {
	cfg TableConfig
	rng interface{ Uint64() uint64 }

	chans     []channel
	free      []int32 // stack of unused slots of chans
	byChannel [1 << 16]int32
	byPair    map[pairKey]int32
	owners    []ownerState
	expiry    []int32 // binary min-heap of slots by deadline

	ownerRate, serverRate rateParams
	server                byteBucket
}

// TableConfig sizes a Table.
type TableConfig struct {
	// MaxChannels bounds the table: 1 … MaxTableChannels.
	MaxChannels int
	// MaxPerOwner bounds the channels one owner (session) holds at once.
	MaxPerOwner int
	// MaxOwners: owners are 0 … MaxOwners−1.
	MaxOwners int
	// OwnerRate is each owner's relay budget (all its channels together);
	// ServerRate the budget of everything the relay forwards.
	OwnerRate, ServerRate ByteRate
}

// MaxTableChannels is the largest MaxChannels: half of the 16-bit channel space,
// so a random free number is found in a few draws.
const MaxTableChannels = 1 << 15

// NoOwner marks an absent owner: the peer of a channel whose peer has not allocated.
const NoOwner int32 = -1

// Errors of NewTable, Allocate and Charge.
var (
	ErrTableConfig = errors.New("relayframe: table bound or rate out of range")
	// ErrTableFull: MaxChannels channels exist.
	ErrTableFull = errors.New("relayframe: forwarding table full")
	// ErrOwnerFull: the owner holds MaxPerOwner channels.
	ErrOwnerFull = errors.New("relayframe: owner holds its maximum of channels")
	// ErrOwnerRate: the frame does not fit its owner's budget.
	ErrOwnerRate = errors.New("relayframe: owner over its relay rate")
	// ErrServerRate: the frame does not fit the server-wide budget.
	ErrServerRate = errors.New("relayframe: server over its relay rate")
)

// channel is one allocated channel: its holder's end of one pair. The fields are
// ordered for size: 64 bytes, one cache line in the slab (a relayed frame reads
// two channels, each a likely cache miss at game rates across many sessions).
type channel struct {
	pairID     uint64
	deadline   proto.Instant // expiry on the monotonic timeline
	expiryUnix uint64        // the same expiry in wall time (its token's)
	tag        uint64        // the caller's, from the last Allocate (the request's txid)
	// remoteServer and remoteChannel: the pair's other channel is on another server
	// of the cluster (LinkRemote); zero when it is local or absent.
	remoteServer  uint64
	owner         int32 // session holding it
	peer          int32 // slot of the pair's other channel, or nilSlot
	heapIdx       int32
	next, prev    int32 // the owner's list of channels
	number        uint16
	remoteChannel uint16
}

type ownerState struct {
	head   int32 // first channel, or nilSlot
	count  int32
	bucket byteBucket
}

type pairKey struct {
	pairID uint64
	owner  int32
}

const nilSlot int32 = -1

// maxBurst is the largest ByteRate.Burst a table takes: newRateParams multiplies
// it by the nanoseconds of a second.
const maxBurst = math.MaxInt64 / int64(time.Second)

// NewTable returns an empty table. rng draws channel numbers (the server's seeded
// generator).
func NewTable(cfg TableConfig, rng interface{ Uint64() uint64 }) (*Table, error) {
	okRate := func(r ByteRate) bool {
		// The burst window is Burst seconds' worth of nanoseconds: Burst·10⁹ must
		// fit an int64 (about 9.2 GB of burst).
		return r.BytesPerSecond > 0 && r.Burst >= MaxFrameLen+FrameCostOverhead && r.Burst <= maxBurst
	}
	if cfg.MaxChannels < 1 || cfg.MaxChannels > MaxTableChannels || cfg.MaxPerOwner < 1 ||
		cfg.MaxOwners < 1 || cfg.MaxOwners > 1<<24 || !okRate(cfg.OwnerRate) || !okRate(cfg.ServerRate) {
		return nil, ErrTableConfig
	}
	t := &Table{
		cfg:        cfg,
		rng:        rng,
		chans:      make([]channel, cfg.MaxChannels),
		free:       make([]int32, cfg.MaxChannels),
		byPair:     make(map[pairKey]int32, cfg.MaxChannels),
		owners:     make([]ownerState, cfg.MaxOwners),
		expiry:     make([]int32, 0, cfg.MaxChannels),
		ownerRate:  newRateParams(cfg.OwnerRate),
		serverRate: newRateParams(cfg.ServerRate),
	}
	for i := range t.free {
		t.free[i] = int32(cfg.MaxChannels - 1 - i)
	}
	for i := range t.byChannel {
		t.byChannel[i] = nilSlot
	}
	for i := range t.owners {
		t.owners[i].head = nilSlot
	}
	return t, nil
}

// Len is the number of channels.
func (t *Table) Len() int { return len(t.chans) - len(t.free) }

// Allocation is what Allocate did.
type Allocation struct {
	Number    uint16 // the owner's channel
	Refreshed bool   // the owner held it already
	PeerReady bool   // it is linked with the peer's channel of the pair
	// NewLink: this call linked the two channels, so the peer (which allocated first)
	// has just become ready too. PeerNumber, PeerExpiryUnix and PeerTag then describe
	// the peer's channel, for the server's notice to it.
	NewLink        bool
	PeerNumber     uint16
	PeerExpiryUnix uint64
	PeerTag        uint64
}

// Allocate gives owner its channel of pair pairID, whose other end is held (or will
// be) by peer, expiring at deadline (expiryUnix in wall time, kept for Reanchor). If
// owner already holds that pair's channel this is a refresh: the same number, the
// new expiry. The channel is linked with peer's channel of the same pair when that
// exists. tag is kept with the channel and handed back as PeerTag when the peer
// links to it (the server keeps the txid of the request there). The caller has
// verified the token behind the request.
func (t *Table) Allocate(owner, peer int32, pairID uint64, deadline proto.Instant, expiryUnix, tag uint64) (Allocation, error) {
	if owner < 0 || int(owner) >= len(t.owners) || peer < NoOwner || int(peer) >= len(t.owners) || owner == peer {
		panic("relayframe: Allocate with an owner out of range")
	}
	i, ok := t.byPair[pairKey{pairID, owner}]
	if !ok {
		switch {
		case t.owners[owner].count >= int32(t.cfg.MaxPerOwner):
			return Allocation{}, ErrOwnerFull
		case len(t.free) == 0:
			return Allocation{}, ErrTableFull
		}
		i = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
		c := &t.chans[i]
		*c = channel{number: t.freeNumber(), owner: owner, peer: nilSlot, pairID: pairID, heapIdx: -1}
		t.byChannel[c.number] = i
		t.byPair[pairKey{pairID, owner}] = i
		o := &t.owners[owner]
		c.next, c.prev = o.head, nilSlot
		if o.head != nilSlot {
			t.chans[o.head].prev = i
		}
		o.head = i
		o.count++
	}
	c := &t.chans[i]
	c.deadline, c.expiryUnix, c.tag = deadline, expiryUnix, tag
	if c.heapIdx < 0 {
		t.heapPush(i)
	} else {
		t.heapFix(int(c.heapIdx))
	}
	a := Allocation{Number: c.number, Refreshed: ok}
	if j, ok := t.byPair[pairKey{pairID, peer}]; ok && peer != NoOwner && c.peer != j {
		t.unlink(i)
		t.unlink(j)
		c.peer, t.chans[j].peer = j, i
		a.NewLink, a.PeerNumber, a.PeerExpiryUnix, a.PeerTag = true, t.chans[j].number, t.chans[j].expiryUnix, t.chans[j].tag
	}
	a.PeerReady = c.peer != nilSlot || c.remoteServer != 0
	return a, nil
}

// Find returns owner's channel of pair pairID: its number, the tag and wall-time
// expiry of its last Allocate, and whether it is linked (locally or remotely).
func (t *Table) Find(owner int32, pairID uint64) (number uint16, tag, expiryUnix uint64, linked, ok bool) {
	i, ok := t.byPair[pairKey{pairID, owner}]
	if !ok {
		return 0, 0, 0, false, false
	}
	c := &t.chans[i]
	return c.number, c.tag, c.expiryUnix, c.peer != nilSlot || c.remoteServer != 0, true
}

// LinkRemote links channel n with channel ch on server (a server ID, not 0) of the
// cluster: the pair's other end is held there (PROTOCOL.md §12.5). It replaces any
// link n had. It reports whether n exists and whether the link is new (not the one n
// already had).
func (t *Table) LinkRemote(n uint16, server uint64, ch uint16) (ok, changed bool) {
	if server == 0 || ch == 0 {
		panic("relayframe: LinkRemote to server or channel 0")
	}
	i := t.byChannel[n]
	if i == nilSlot {
		return false, false
	}
	c := &t.chans[i]
	if c.peer == nilSlot && c.remoteServer == server && c.remoteChannel == ch {
		return true, false
	}
	t.unlink(i)
	c.remoteServer, c.remoteChannel = server, ch
	return true, true
}

// freeNumber draws a channel number nobody holds, at random in 1–65535. The table is
// at most half full, so a draw is free with probability ≥ ½; the linear probe after
// it bounds the work in any case.
func (t *Table) freeNumber() uint16 {
	n := uint16(t.rng.Uint64())
	for n == 0 || t.byChannel[n] != nilSlot {
		n++
	}
	return n
}

// unlink detaches i from its peer, local or remote, if any.
func (t *Table) unlink(i int32) {
	t.chans[i].remoteServer, t.chans[i].remoteChannel = 0, 0
	if p := t.chans[i].peer; p != nilSlot {
		t.chans[p].peer = nilSlot
		t.chans[i].peer = nilSlot
	}
}

// Route is where a channel's frames go.
type Route struct {
	Owner       int32  // the session holding the channel: frames must come from it
	Peer        int32  // the session holding the pair's other channel, or NoOwner
	PeerChannel uint16 // that channel's number (0 with NoOwner and no remote link)
	// RemoteServer: the other channel is PeerChannel on this server of the cluster
	// (Peer is NoOwner); 0 when it is local or absent.
	RemoteServer uint64
}

// Touch reads what Lookup and Charge of channel n read and returns the owners of
// its two ends (NoOwner when absent), changing nothing. A caller holding a batch of
// frames touches them all first: the reads of different frames do not depend on
// each other, so their cache misses overlap instead of coming one after another
// (Server.Touch).
func (t *Table) Touch(n uint16) (owner, peer int32) {
	i := t.byChannel[n]
	if i == nilSlot {
		return NoOwner, NoOwner
	}
	c := &t.chans[i]
	owner, peer = c.owner, NoOwner
	if c.peer != nilSlot {
		peer = t.chans[c.peer].owner
	}
	_ = t.owners[owner].bucket.tat
	return owner, peer
}

// Lookup returns the route of channel number n.
func (t *Table) Lookup(n uint16) (Route, bool) {
	i := t.byChannel[n]
	if i == nilSlot {
		return Route{}, false
	}
	c := &t.chans[i]
	if c.peer == nilSlot {
		return Route{Owner: c.owner, Peer: NoOwner, PeerChannel: c.remoteChannel, RemoteServer: c.remoteServer}, true
	}
	p := &t.chans[c.peer]
	return Route{Owner: c.owner, Peer: p.owner, PeerChannel: p.number}, true
}

// Charge takes a frame of n bytes (plus FrameCostOverhead) from owner's budget and
// the server's, or from neither when either is short.
func (t *Table) Charge(now proto.Instant, owner int32, n int) error {
	o := &t.owners[owner].bucket
	dOwner := t.ownerRate.cost(n + FrameCostOverhead)
	if !o.fits(now, dOwner, t.ownerRate.window) {
		return ErrOwnerRate
	}
	dServer := t.serverRate.cost(n + FrameCostOverhead)
	if !t.server.fits(now, dServer, t.serverRate.window) {
		return ErrServerRate
	}
	o.take(now, dOwner)
	t.server.take(now, dServer)
	return nil
}

// ChargeServer takes a frame of n bytes (plus FrameCostOverhead) that arrived from
// another server of the cluster from the server-wide budget only: its sender's budget
// was charged on its own server.
func (t *Table) ChargeServer(now proto.Instant, n int) error {
	d := t.serverRate.cost(n + FrameCostOverhead)
	if !t.server.fits(now, d, t.serverRate.window) {
		return ErrServerRate
	}
	t.server.take(now, d)
	return nil
}

// DropOwner removes every channel owner holds (its session ended) and returns how
// many. Their peers' channels stay, unlinked, until they expire or are refreshed
// into a new link. The owner's byte bucket is kept: a session that re-registers
// into the same slot does not get a fresh burst.
func (t *Table) DropOwner(owner int32) int {
	n := 0
	for i := t.owners[owner].head; i != nilSlot; i = t.owners[owner].head {
		t.remove(i)
		n++
	}
	return n
}

// Release removes owner's channel of pair pairID, if it holds one, and reports
// whether it did. The peer's channel stays, unlinked, as after DropOwner.
func (t *Table) Release(owner int32, pairID uint64) bool {
	i, ok := t.byPair[pairKey{pairID, owner}]
	if ok {
		t.remove(i)
	}
	return ok
}

// Expire removes the channels whose deadline is at or before now and returns how
// many.
func (t *Table) Expire(now proto.Instant) int {
	n := 0
	for len(t.expiry) > 0 && t.chans[t.expiry[0]].deadline <= now {
		t.remove(t.expiry[0])
		n++
	}
	return n
}

// Deadline is the earliest channel expiry, proto.Never with no channel.
func (t *Table) Deadline() proto.Instant {
	if len(t.expiry) == 0 {
		return proto.Never
	}
	return t.chans[t.expiry[0]].deadline
}

// Reanchor recomputes every channel's deadline from its wall-time expiry, after the
// server's wall clock moved against its monotonic one.
func (t *Table) Reanchor(deadline func(expiryUnix uint64) proto.Instant) {
	for _, i := range t.expiry {
		t.chans[i].deadline = deadline(t.chans[i].expiryUnix)
	}
	for k := len(t.expiry)/2 - 1; k >= 0; k-- {
		t.heapDown(k)
	}
}

// remove frees slot i and every index entry of it.
func (t *Table) remove(i int32) {
	c := &t.chans[i]
	t.unlink(i)
	t.heapRemove(int(c.heapIdx))
	t.byChannel[c.number] = nilSlot
	delete(t.byPair, pairKey{c.pairID, c.owner})
	o := &t.owners[c.owner]
	if c.prev != nilSlot {
		t.chans[c.prev].next = c.next
	} else {
		o.head = c.next
	}
	if c.next != nilSlot {
		t.chans[c.next].prev = c.prev
	}
	o.count--
	*c = channel{peer: nilSlot, heapIdx: -1}
	t.free = append(t.free, i)
}

// --- expiry heap: a binary min-heap of slots by deadline; chans[i].heapIdx is the
// position of slot i, so a refresh or removal is O(log n) without a search.

func (t *Table) less(a, b int) bool {
	return t.chans[t.expiry[a]].deadline < t.chans[t.expiry[b]].deadline
}

func (t *Table) swap(a, b int) {
	t.expiry[a], t.expiry[b] = t.expiry[b], t.expiry[a]
	t.chans[t.expiry[a]].heapIdx = int32(a)
	t.chans[t.expiry[b]].heapIdx = int32(b)
}

func (t *Table) heapPush(i int32) {
	t.expiry = append(t.expiry, i)
	t.chans[i].heapIdx = int32(len(t.expiry) - 1)
	t.heapUp(len(t.expiry) - 1)
}

func (t *Table) heapRemove(k int) {
	last := len(t.expiry) - 1
	if k != last {
		t.swap(k, last)
	}
	t.chans[t.expiry[last]].heapIdx = -1
	t.expiry = t.expiry[:last]
	if k != last {
		t.heapFix(k)
	}
}

func (t *Table) heapFix(k int) {
	if !t.heapDown(k) {
		t.heapUp(k)
	}
}

func (t *Table) heapUp(k int) {
	for k > 0 {
		parent := (k - 1) / 2
		if !t.less(k, parent) {
			return
		}
		t.swap(k, parent)
		k = parent
	}
}

// heapDown sifts k down and reports whether it moved.
func (t *Table) heapDown(k int) bool {
	start := k
	for {
		l := 2*k + 1
		if l >= len(t.expiry) {
			break
		}
		m := l
		if r := l + 1; r < len(t.expiry) && t.less(r, l) {
			m = r
		}
		if !t.less(m, k) {
			break
		}
		t.swap(k, m)
		k = m
	}
	return k > start
}
