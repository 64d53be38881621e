// Command natpass is the command-line face of natpass.
//
//	natpass lab      [--runs N] [--seed S] [--json] [--a PRESET --b PRESET] [--replay SEED]
//	natpass server   --listen HOST:PORT [--listen2 HOST:PORT] (--secret-file FILE | --insecure-dev)
//	                 [--admin-listen HOST:PORT] [--log-format text|json] [--log-level LEVEL]
//	natpass ticket   --secret-file FILE --id NAME [--ttl DURATION]
//	natpass cat      --server HOST:PORT --id NAME (--ticket T --key K | --secret-file FILE | --insecure-dev)
//	                 [--connect PEER] [--relay auto|force|never]
//	natpass room     --server HOST:PORT --id NAME --room ROOM (--ticket T --key K | --secret-file FILE | --insecure-dev)
//	                 [--relay auto|force|never] [--wait N] [--linger DURATION]
//	natpass natcheck --server HOST:PORT
//	natpass demo
//
// Run a command with -h for all its flags. Every flag of server also comes from
// NATPASS_<FLAG> (NATPASS_LISTEN), of cat, ticket, natcheck and demo from
// NATPASS_<COMMAND>_<FLAG> (NATPASS_CAT_SERVER); the command line wins.
package main

import (
	"fmt"
	"io"
	"os"
)

type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
}

var commands = []command{
	{"lab", "run every NAT-preset pair on the simulator and print the direct-path matrix", runLab},
	{"server", "run a rendezvous server", runServer},
	{"ticket", "mint a ticket (and a key pair) for a peer ID", runTicket},
	{"cat", "netcat between two peers: stdin to the peer, the peer to stdout", runCat},
	{"room", "a chat room: stdin's lines to every member, theirs to stdout", runRoom},
	{"natcheck", "measure the NAT in front of this host", runNatcheck},
	{"demo", "a server and two nodes on loopback exchanging messages", runDemo},
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "natpass: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: natpass <command> [flags]\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}
