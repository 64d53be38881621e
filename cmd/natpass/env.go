package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// serverEnvPrefix is the environment prefix of `natpass server`'s flags:
// NATPASS_LISTEN for --listen (DESIGN §15). The other commands take
// NATPASS_<COMMAND>_<FLAG> (NATPASS_CAT_SERVER), so that a shell set up for a
// server (NATPASS_LISTEN=...) does not bind a cat or a room to the server's address.
const serverEnvPrefix = "NATPASS_"

// commandEnvPrefix is the environment prefix of command name's flags.
func commandEnvPrefix(name string) string {
	if name == "server" {
		return serverEnvPrefix
	}
	return serverEnvPrefix + strings.ToUpper(name) + "_"
}

// envName is the variable that carries flag name: prefix, then the name
// upper-cased with '-' as '_' (--drain-timeout: NATPASS_DRAIN_TIMEOUT).
func envName(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// newFlagSet is a command's FlagSet whose help also names the environment
// variables (parseFlags reads them).
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage of natpass %s:\n", name)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nevery flag can also come from the environment: %s (--a-flag: %s); the command line wins\n",
			envName(commandEnvPrefix(name), "<FLAG>"), envName(commandEnvPrefix(name), "a-flag"))
	}
	return fs
}

// parseFlags parses args into fs, then gives every flag the command line left
// unset the value of its environment variable (envName with the command's prefix),
// if that is set and not empty: flags on the command line win. A bad value is
// reported on fs's output, naming the variable.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	prefix := commandEnvPrefix(fs.Name())
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if onCommandLine[f.Name] || err != nil {
			return
		}
		name := envName(prefix, f.Name)
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("%s=%q: %v", name, v, serr)
			fmt.Fprintf(fs.Output(), "natpass %s: %v\n", fs.Name(), err)
		}
	})
	return err
}
