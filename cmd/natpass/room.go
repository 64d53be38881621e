package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/rudp"
)

// roomLineMax bounds one line of stdin (one message).
const roomLineMax = 64 << 10

// runRoom is a chat room over natpass:
//
//	natpass room --server HOST:PORT[,HOST:PORT...] --id NAME --room ROOM
//	             (--ticket T --key K | --secret-file FILE | --insecure-dev)
//	             [--relay auto|force|never] [--wait N] [--linger DURATION]
//
// It joins ROOM (the server keeps the member list; every pair of members has its
// own link, direct or relayed). Each line of stdin is broadcast to every member
// (reliable-ordered, lane 0); each line received is written to stdout as
// `SENDER: text`. Members joining and leaving, the owner changing, links coming
// up and their path changes go to stderr. With --wait N it waits for links with N
// members before reading stdin. Once stdin has ended and every member present
// acknowledged every line, it stays --linger longer (still printing what comes)
// and exits 0.
func runRoom(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return roomMain(ctx, args, os.Stdin, stdout, stderr)
}

// roomOptions are natpass room's flags beyond the driver's Config.
type roomOptions struct {
	room    string
	wait    int
	linger  time.Duration
	timeout time.Duration
}

const roomUsage = "usage: natpass room --server HOST:PORT[,HOST:PORT...] --id NAME --room ROOM (--ticket T --key K | --secret-file FILE | --insecure-dev) [--relay auto|force|never] [--wait N] [--linger DURATION]"

// parseRoomFlags parses natpass room's flags; code is 0 when they are usable, 2
// (after printing why) when not.
func parseRoomFlags(args []string, stderr io.Writer) (opt roomOptions, cfg driver.Config, code int) {
	fs := newFlagSet("room", stderr)
	server := fs.String("server", "", "rendezvous server HOST:PORT, or a comma-separated list of a cluster's servers, tried in order (required)")
	id := fs.String("id", "", "this node's peer ID (required)")
	fs.StringVar(&opt.room, "room", "", "the room to join, 1–64 bytes (required)")
	relay := fs.String("relay", "auto", "relay policy for the links this node starts: auto, force or never")
	listen := fs.String("listen", "", "local IP:PORT for the main socket (default: the route to the server, any port)")
	fs.IntVar(&opt.wait, "wait", 0, "wait until links with this many other members are up before reading stdin")
	fs.DurationVar(&opt.linger, "linger", 2*time.Second, "stay this long after stdin ended and every line was acknowledged")
	fs.DurationVar(&opt.timeout, "timeout", 0, "give up joining (and --wait) after this long (0: wait)")
	var tcp nodeTCPFlags
	tcp.register(fs)
	var adm admission
	adm.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return opt, cfg, 2
	}
	if *server == "" || *id == "" || opt.room == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, roomUsage)
		return opt, cfg, 2
	}
	servers, err := parseServers(*server)
	if err != nil {
		fmt.Fprintln(stderr, "natpass room: --server:", err)
		return opt, cfg, 2
	}
	policy, ok := map[string]node.RelayPolicy{"auto": node.RelayAuto, "force": node.RelayForce, "never": node.RelayNever}[*relay]
	switch {
	case !ok:
		fmt.Fprintf(stderr, "natpass room: --relay %q: want auto, force or never\n", *relay)
		return opt, cfg, 2
	case len(opt.room) > 64:
		fmt.Fprintln(stderr, "natpass room: --room: at most 64 bytes")
		return opt, cfg, 2
	case opt.wait < 0 || opt.linger < 0 || opt.timeout < 0:
		fmt.Fprintln(stderr, "natpass room: --wait, --linger and --timeout must not be negative")
		return opt, cfg, 2
	}
	cfg = driver.Config{Servers: servers, ID: *id, Listen: *listen, Relay: policy}
	if err := adm.apply(&cfg, false); err != nil {
		fmt.Fprintln(stderr, "natpass room:", err)
		return opt, cfg, 2
	}
	if err := tcp.apply(&cfg); err != nil {
		fmt.Fprintln(stderr, "natpass room:", err)
		return opt, cfg, 2
	}
	return opt, cfg, 0
}

// lockedWriter serializes lines from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) println(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format+"\n", args...)
}

func roomMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	opt, cfg, code := parseRoomFlags(args, stderr)
	if code != 0 {
		return code
	}
	log := &lockedWriter{w: stderr}
	cfg.OnServer = func(from, to netip.AddrPort, reason string) {
		log.println("server from=%v to=%v reason=%q", from, to, reason)
	}
	n, r, err := roomJoin(ctx, cfg, opt, log)
	if err != nil {
		log.println("natpass room: %v", err)
		return 1
	}
	defer n.Close()
	if err := roomRun(ctx, r, opt, stdin, stdout, log); err != nil {
		log.println("natpass room: %v", err)
		return 1
	}
	return 0
}

// roomJoin registers, joins the room and, with --wait, waits for the links.
func roomJoin(ctx context.Context, cfg driver.Config, opt roomOptions, log *lockedWriter) (*driver.Node, *driver.Room, error) {
	if opt.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opt.timeout)
		defer cancel()
	}
	n, err := driver.Listen(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	r, err := n.JoinRoom(ctx, opt.room)
	if err != nil {
		n.Close()
		if errors.Is(err, driver.ErrRoomFull) {
			return nil, nil, fmt.Errorf("room %q is full", opt.room)
		}
		return nil, nil, err
	}
	log.println("natpass room: joined %q as %q: members %s (owner %s)", opt.room, cfg.ID, strings.Join(r.Members(), ","), r.Owner())
	go roomEvents(r, log, n.Server().String())
	for len(r.Linked()) < opt.wait {
		select {
		case <-ctx.Done():
			n.Close()
			return nil, nil, fmt.Errorf("waiting for %d members: %w", opt.wait, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return n, r, nil
}

// roomEvents prints the room's events on stderr until the node is out of it.
func roomEvents(r *driver.Room, log *lockedWriter, server string) {
	for {
		select {
		case e := <-r.Events():
			switch e.Kind {
			case driver.RoomPathChanged, driver.RoomLinkUp:
				log.println("member=%s %s %s", e.Member, e.Kind, pathLine(e.Path, server, 0))
			default:
				log.println("member=%s %s", e.Member, e.Kind)
			}
		case <-r.Done():
			return
		}
	}
}

// roomRun broadcasts stdin's lines and prints what the members send until stdin
// ended, everything sent was acknowledged and the linger passed.
func roomRun(ctx context.Context, r *driver.Room, opt roomOptions, stdin io.Reader, stdout io.Writer, log *lockedWriter) error {
	ctx, cancel := context.WithCancel(ctx)
	recvDone := make(chan error, 1)
	go func() { recvDone <- roomReceive(ctx, r, stdout) }()
	stopRecv := func() error {
		cancel()
		if err := <-recvDone; err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
		return nil
	}
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 4096), roomLineMax)
	for in.Scan() {
		if err := r.BroadcastContext(ctx, 0, rudp.ReliableOrdered, in.Bytes()); err != nil {
			log.println("natpass room: broadcast: %v", err) // the members that got it keep it
		}
	}
	if err := in.Err(); err != nil {
		stopRecv()
		return fmt.Errorf("reading stdin: %w", err)
	}
	if err := r.Flush(ctx); err != nil {
		stopRecv()
		return fmt.Errorf("waiting for acknowledgements: %w", err)
	}
	select {
	case <-time.After(opt.linger):
	case <-ctx.Done():
	}
	return stopRecv()
}

// roomReceive writes each member's line as "SENDER: text".
func roomReceive(ctx context.Context, r *driver.Room, stdout io.Writer) error {
	for {
		m, err := r.Recv(ctx)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(stdout, "%s: %s\n", m.From, m.Data); err != nil {
			return fmt.Errorf("writing stdout: %w", err)
		}
	}
}
