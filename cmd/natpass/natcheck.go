package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/proto"
)

// natReport is `natpass natcheck --json`; the field names are an interface.
type natReport struct {
	Family        string `json:"family"` // "ipv4" or "ipv6"
	Local         string `json:"local"`
	External      string `json:"external"`
	Translation   bool   `json:"translation"`
	Mapping       string `json:"mapping"`
	Filtering     string `json:"filtering"`
	Allocation    string `json:"allocation"`
	PortDelta     int    `json:"port_delta,omitempty"`
	Hairpinning   string `json:"hairpinning"`
	PunchingHints string `json:"punching"`
	// Other is the other IP family's report, on a dual-stack host whose server
	// has both (PROTOCOL.md §5.12); OtherError says why it is missing when the
	// node had a socket in that family but got no report.
	Other      *natReport `json:"other,omitempty"`
	OtherError string     `json:"other_error,omitempty"`
}

// otherWait bounds the wait for the other family's report after the first.
const otherWait = 15 * time.Second

// runNatcheck registers with a server, measures the NAT in front of this host and
// prints what it found:
//
//	natpass natcheck --server HOST:PORT [--ticket T --key K | --secret-file F | --insecure-dev] [--json]
//
// Without admission flags it registers as an --insecure-dev server expects; a
// server with a secret then refuses, and natcheck says which flag to add. With a
// ticket it registers under the ticket's ID, which replaces a session of that ID
// (a running `natpass cat`): mint natcheck a ticket of its own.
func runNatcheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("natcheck", stderr)
	server := fs.String("server", "", "rendezvous server HOST:PORT (required)")
	id := fs.String("id", "", "peer ID to register as (default: natcheck-<random>)")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	var adm admission
	adm.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *server == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: natpass natcheck --server HOST:PORT [--ticket T --key K | --secret-file FILE | --insecure-dev] [--json]")
		return 2
	}
	cfg := driver.Config{Server: *server, ID: *id}
	if err := adm.apply(&cfg, true); err != nil {
		fmt.Fprintln(stderr, "natpass natcheck:", err)
		return 2
	}
	var tk proto.Ticket
	switch {
	case cfg.ID != "":
	case len(cfg.Ticket) > 0 && tk.Parse(cfg.Ticket) == nil:
		cfg.ID = string(tk.PeerID) // a ticket admits only its own ID
	default:
		_, pub, err := driver.NewKey()
		if err != nil {
			fmt.Fprintln(stderr, "natpass natcheck:", err)
			return 1
		}
		cfg.ID = fmt.Sprintf("natcheck-%x", pub[:6])
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	n, err := driver.Listen(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "natpass natcheck:", err)
		if cfg.InsecureDev && adm.ticket == "" && !adm.insecureDev {
			fmt.Fprintln(stderr, "natpass natcheck: a server with a secret needs --ticket/--key or --secret-file")
		}
		return 1
	}
	defer n.Close()
	r, err := n.NAT(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "natpass natcheck: measuring the NAT:", err)
		return 1
	}
	out := reportOf(r)
	if n.OtherLocalAddr().IsValid() {
		octx, ocancel := context.WithTimeout(ctx, otherWait)
		o, err := n.OtherNAT(octx)
		ocancel()
		if err != nil {
			out.OtherError = fmt.Sprintf("no %s report from the server (%v): it may not listen on %s, or %s is blocked", familyOf(n.OtherLocalAddr()), err, familyOf(n.OtherLocalAddr()), familyOf(n.OtherLocalAddr()))
		} else {
			other := reportOf(o)
			out.Other = &other
		}
	}
	if *asJSON {
		b, _ := json.Marshal(out)
		fmt.Fprintln(stdout, string(b))
		return 0
	}
	printReport(stdout, out)
	if out.Other != nil {
		fmt.Fprintln(stdout)
		printReport(stdout, *out.Other)
	} else if out.OtherError != "" {
		fmt.Fprintf(stdout, "\n%-12s %s\n", familyOf(n.OtherLocalAddr()), out.OtherError)
	}
	return 0
}

// printReport prints one family's report as natcheck's text output.
func printReport(w io.Writer, out natReport) {
	fmt.Fprintf(w, "family       %s\nlocal        %s\nexternal     %s\ntranslation  %v\nmapping      %s\nfiltering    %s\n",
		out.Family, out.Local, out.External, out.Translation, out.Mapping, out.Filtering)
	alloc := out.Allocation
	if out.PortDelta != 0 {
		alloc += fmt.Sprintf(" (delta %d)", out.PortDelta)
	}
	fmt.Fprintf(w, "allocation   %s\nhairpinning  %s\npunching     %s\n", alloc, out.Hairpinning, out.PunchingHints)
}

// familyOf names a's IP family as natcheck prints it.
func familyOf(a netip.AddrPort) string {
	if a.Addr().Is4() {
		return "ipv4"
	}
	return "ipv6"
}

func reportOf(r driver.NATReport) natReport {
	b := r.Behavior
	return natReport{
		Family: familyOf(r.Local), Local: r.Local.String(), External: r.Observed.String(), Translation: !b.NoTranslation,
		Mapping: b.Mapping.String(), Filtering: b.Filtering.String(), Allocation: b.Allocation.String(),
		PortDelta: int(b.PortDelta), Hairpinning: b.Hairpin.String(), PunchingHints: punchingHint(b),
	}
}

// punchingHint says in a few words what this NAT means for hole punching (DESIGN §6.5).
func punchingHint(b proto.NATBehavior) string {
	switch {
	case b.NoTranslation:
		return "easy: no address translation"
	case b.Mapping == proto.EndpointIndependent:
		return "easy: endpoint-independent mapping, simultaneous open works"
	case b.Allocation == proto.AllocationSequential:
		return "hard: symmetric with sequential ports, prediction needed"
	case b.Allocation == proto.AllocationRandom:
		return "hard: symmetric with random ports, birthday probing or relay"
	}
	return "unknown"
}
