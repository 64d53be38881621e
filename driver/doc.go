// Package driver runs natpass on real UDP sockets: it binds the node and rendezvous
// state machines to net.UDPConn and gives Go programs a blocking API in the style
// of the standard library.
//
//	srv, _ := driver.ListenServer(driver.ServerConfig{Listen: "203.0.113.1:3478", Secret: secret})
//	n, _ := driver.Listen(ctx, driver.Config{Server: "203.0.113.1:3478", ID: "alice", Ticket: t, PrivateKey: k})
//	c, _ := n.Connect(ctx, "bob")              // or n.Accept(ctx) on bob's side
//	c.Send(0, rudp.ReliableOrdered, []byte("hi"))
//	m, _ := c.Recv(ctx)                         // io.EOF after the peer's Close
//
// # How a machine runs
//
// Each Node and Server owns one machine (node.Node, rendezvous.Server), which is
// not safe for concurrent use, and one lock, the loop's, that every call to it
// holds. Whichever goroutine has work calls the machine itself, holding the lock:
//
//	socket readers ──reads────▶ ┐
//	API calls ─────commands───▶ ├─ loop: Handle*/command, then the drain rule:
//	timer (machine Deadline) ─▶ ┘        PollTransmit until false (sent in
//	                                     GSO runs or sendmmsg batches), PollEvent
//	                                     until false, re-arm the one timer
//	                                     at Deadline (no sooner than 1 ms
//	                                     ahead unless due: loop.go timerDelay)
//
// One goroutine per socket reads datagrams into buffers of its own (the main and
// server sockets read up to 8 at a time with recvmmsg on Linux, or 4 coalesced
// GRO reads) and hands each read to the machine itself: a datagram wakes no other
// goroutine, and its replies leave in one send at the end of the read. An API
// call runs its command on the caller's goroutine the same way; the owner's
// goroutine only runs the timer and the rare wake-ups (returned credit, room
// outboxes). A reader reads again only once the machine has had its last read,
// so when the machine falls behind the kernel drops, and a flood costs bounded
// memory. Datagrams longer than
// any natpass datagram are dropped unread; everything the machine refuses is
// counted (Stats.Rejected, and by reason in Stats.Node). The machine's clock is
// time.Since of the node's start (monotonic); wall time enters once, as the
// WallClock anchor. Callbacks (Config.OnPath, OnServer, OnTransport,
// ServerConfig.Log) run holding the lock: they must be quick and must not call
// the Node or Server.
//
// Extra sockets (EventOpenSockets: NAT measurement, birthday punching) are bound
// on the main socket's IP, each with its reader, up to Config.MaxExtraSockets. A
// Transmit with TTL set leaves with that IP TTL (hop limit on IPv6): the socket
// option is set around that one write, which only the loop (holding its lock) makes.
//
// # The API
//
// Listen returns once the server admitted the node; NAT waits for the NAT
// measurement. Connect asks for an introduction and returns when the encrypted
// session is up; Accept returns the connections peers opened. A Conn's Send
// copies the message; while rudp's send buffer is full (RUDP.SendBufferBytes) or
// its lane's queue of bytes not yet sent (RUDP.SendQueueBytes, 1 MiB by default
// here) it waits for room, and SendContext gives up when its context ends. Flush waits
// until the peer acknowledged everything; Recv returns messages in delivery
// order, then io.EOF after the peer's Close, or ErrConnClosed, ErrClosed. Path
// changes arrive on Conn.PathEvents and Config.OnPath. Contexts bound every wait;
// Close ends everything and returns when every goroutine has.
//
// # Flow control (DESIGN §11)
//
// A slow reader slows the sender down; it never loses data or the connection.
// Received messages wait in a queue per Conn, and each holds its flow-control
// credit until Recv takes it, so the queue is bounded by the window: reliable
// messages by RUDP.RecvWindow, unreliable ones by RecvWindow too (rudp drops and
// counts those past it, Stats.UnreliableDropped). A reader that stops reading
// closes the peer's window; the peer's send buffer fills and its Send waits.
// Recv gives credit back without a trip to the loop per message: it gathers
// credit in the Conn and wakes the loop (through a channel of capacity 1) when an
// eighth of the window is waiting or when the queue became empty, and the loop
// gives it to node.Consumed and drains. A reader that has read everything
// therefore never leaves credit parked while the sender waits for it.
//
// Commands reach the loop through a channel of pooled command values and the
// loop answers on the command's own channel, so Send allocates nothing.
package driver
