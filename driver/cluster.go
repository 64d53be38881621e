package driver

import "github.com/natpass/natpass/rendezvous"

// ClusterBus carries a server's cluster messages to the other servers of its cluster
// (DESIGN §12). natsbus.Bus is the NATS implementation; driver/ itself imports no
// NATS, so an app embedding the client compiles none.
//
// The server's loop calls Publish, Subscribe and Unsubscribe from one goroutine; they
// must not block for long (queue and return). Inbox delivers the messages of the
// subscribed subjects and the NoResponders notices of published requests; the bus
// owns the channel, bounds it, and counts what it drops when the server falls
// behind. Close ends the bus's connection and closes Inbox.
type ClusterBus interface {
	// Publish sends m. m.Data is only read during the call.
	Publish(m rendezvous.ClusterMessage) error
	// Subscribe starts delivering messages for subject to Inbox; Unsubscribe stops.
	Subscribe(subject string) error
	Unsubscribe(subject string) error
	Inbox() <-chan rendezvous.ClusterMessage
	Close() error
}
