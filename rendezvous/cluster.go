package rendezvous

import (
	"errors"
)

// The cluster (PROTOCOL.md §12, DESIGN §12): servers that share a ticket secret
// exchange ClusterMessages over a bus (natsbus binds it to NATS, sim to a
// deterministic in-memory bus). Presence is subject interest: a server asks the bus
// (PollInterest) for the subject of every peer registered on it, so a message for a
// peer reaches the one server holding it, and a request for a peer nobody holds
// comes back as a NoResponders notice on its Reply subject.

// ClusterMessage is one message on the cluster bus. As an output (PollCluster) Data
// is valid until the next call into the server; as an input (HandleCluster) it is
// only read during the call.
type ClusterMessage struct {
	// Subject is where the message goes: a peer's subject (PeerSubject) or a
	// server's (ServerSubject).
	Subject string
	// Reply is the subject an answer goes to, "" when none is wanted. When nobody
	// subscribes to Subject, the bus delivers a NoResponders notice to Reply.
	Reply string
	// Data is the message (PROTOCOL.md §12), empty in a NoResponders notice.
	Data []byte
	// NoResponders (input only): the bus found no subscriber for the request whose
	// Reply subject is Subject.
	NoResponders bool
}

// Interest is a change of the subjects the server receives: the bus subscribes to
// Subject when Subscribe is true and unsubscribes otherwise. The server's own
// subject (ServerSubject) is the first interest a clustered server reports.
type Interest struct {
	Subject   string
	Subscribe bool
}

// Subject prefixes. A binding may put its own prefix (a cluster name) in front of
// every subject; it must strip it again on delivery.
const (
	subjectPeer   = "peer."
	subjectServer = "srv."
)

// ErrNotClustered: a cluster message reached a server configured without
// Config.Cluster.
var ErrNotClustered = errors.New("rendezvous: cluster message to a server outside a cluster")

// maxClusterQueue bounds the cluster messages waiting for PollCluster, and
// maxInterestQueue the interest changes waiting for PollInterest. One input makes at
// most a few of either; a full queue means the owner stopped draining, and what does
// not fit is dropped and counted (ClusterStats.DropQueueFull).
const (
	maxClusterQueue  = 64
	maxInterestQueue = 64
)
