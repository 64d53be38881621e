// Package natsbus carries a rendezvous cluster's messages over NATS (DESIGN §12): Bus
// implements driver.ClusterBus, the interface the server's loop drives, so driver/
// and the core packages import no NATS.
//
//	server A's loop                                          server B's loop
//	  Publish(peer.6162, reply srv.aa) ─▶ Bus A              Bus B ─▶ Inbox
//	                                       │ nats.go (in process)  ▲
//	                                       ▼                       │
//	                                 nats-server A ══route══ nats-server B
//	                                  (embedded)   secret-derived   (embedded)
//	                                               credentials
//
// Each server either embeds a nats-server (the default: no client listener, one
// in-process connection, a route listener on Config.ClusterListen and routes to
// Config.ClusterPeers) or connects to an external NATS at Config.URL.
//
// # Subjects
//
// The server speaks relative subjects (peer.<id>, srv.<id>, PROTOCOL.md §11). On the
// wire every subject carries the prefix natpass.<ClusterName>., so two natpass
// clusters sharing one external NATS stay apart; the bus strips the prefix on
// delivery and drops (and counts) a message whose reply subject lies outside it.
//
// # No responders
//
// A Publish with a Reply subject is a request. When no subscriber anywhere in the
// cluster matches its subject, nats-server answers with a status message (header
// "NATS/1.0 503") on the Reply subject, and the bus delivers it to Inbox as
// ClusterMessage{Subject: Reply, NoResponders: true}. nats-server sends that notice
// only to a subscription of the publishing connection matching Reply (server
// client.go, subForReply), and only when the connection announced headers and
// no_responders in its CONNECT (nats.go does whenever the server supports
// headers). So a request's Reply must be a subject this bus subscribes to (the
// server's own srv.<id>, or a subject under a wildcard it subscribes to);
// otherwise "nobody there" is silent. A request that finds interest on a route is
// not answered with 503 if the remote subscriber leaves before it arrives: that
// race is the one silent loss, and the rendezvous machine's timers cover it.
//
// # Route authentication
//
// An embedded cluster needs Config.Secret. Every server derives the route password
// from it (HMAC-SHA256 keyed by the secret over the label routePasswordLabel and the
// cluster name; the user is the constant routeUser): the route listener accepts
// only routes presenting them, and every route this server opens (configured or
// learnt by gossip) presents them. The raw secret never leaves the
// process. Routes are plain TCP: the credentials authenticate the connecting side
// only and cross the network in clear, so a cluster's routes belong on a private
// network.
//
// # Call contract
//
// Start returns a connected Bus. Publish, Subscribe and Unsubscribe do not wait
// for the network (nats.go buffers); one goroutine (the server's loop) calls them,
// though they are safe for concurrent use. Inbox is read by that loop; a message
// that finds Inbox full is dropped and counted (Stats.DroppedInboxFull). Close
// ends everything and closes Inbox once; Stats, Peers, WaitPeers and WaitInterest
// may be called from any goroutine.
package natsbus
