package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/rendezvous"
)

// Text forms: a ticket is unpadded base64url (safe in a shell word and a URL); a
// private key is standard base64 of its 32 bytes, as WireGuard writes keys.
var (
	ticketEncoding = base64.RawURLEncoding
	keyEncoding    = base64.StdEncoding
)

// runTicket mints a ticket: `natpass ticket --secret-file FILE --id NAME [--ttl D]
// [--key-file FILE]`. The ticket binds the ID to a public key. Without --key-file a
// fresh key pair is drawn and its private key printed beside the ticket; with it,
// the key in FILE is used (and FILE is created with a fresh key if it does not
// exist). Either way stdout is one line of cat flags:
//
//	--ticket T --key K        (or --ticket T --key-file FILE)
//
// so that `natpass cat ... $(cat alice.flags)` works.
func runTicket(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("ticket", stderr)
	secretFile := fs.String("secret-file", "", "file holding the server secret (required)")
	id := fs.String("id", "", "peer ID the ticket admits (required)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the ticket is valid")
	keyFile := fs.String("key-file", "", "private key file to bind (created if missing); default: print a new key")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	if *secretFile == "" || *id == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: natpass ticket --secret-file FILE --id NAME [--ttl DURATION] [--key-file FILE]")
		return 2
	}
	secret, err := readSecret(*secretFile)
	if err != nil {
		fmt.Fprintln(stderr, "natpass ticket:", err)
		return 1
	}
	var priv [32]byte
	if *keyFile != "" {
		priv, err = loadOrCreateKey(*keyFile)
	} else {
		priv, _, err = driver.NewKey()
	}
	if err != nil {
		fmt.Fprintln(stderr, "natpass ticket:", err)
		return 1
	}
	pub, err := driver.PublicKey(priv)
	if err != nil {
		fmt.Fprintln(stderr, "natpass ticket:", err)
		return 1
	}
	t, err := driver.MintTicket(secret, *id, pub, *ttl)
	if err != nil {
		fmt.Fprintln(stderr, "natpass ticket:", err)
		return 1
	}
	fmt.Fprintf(stderr, "natpass ticket: %q, public key %s, expires %s\n", *id,
		keyEncoding.EncodeToString(pub[:]), time.Now().Add(*ttl).UTC().Format(time.RFC3339))
	if *keyFile != "" {
		fmt.Fprintf(stdout, "--ticket %s --key-file %s\n", ticketEncoding.EncodeToString(t), *keyFile)
	} else {
		fmt.Fprintf(stdout, "--ticket %s --key %s\n", ticketEncoding.EncodeToString(t), keyEncoding.EncodeToString(priv[:]))
	}
	return 0
}

// readSecret reads a server secret file: its bytes, without surrounding
// whitespace, at least rendezvous.MinSecretLen of them. `head -c 32 /dev/urandom |
// base64 > secret` makes a good one.
func readSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) < rendezvous.MinSecretLen {
		return nil, fmt.Errorf("secret in %s is %d bytes; at least %d needed", path, len(b), rendezvous.MinSecretLen)
	}
	return b, nil
}

func parseKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := keyEncoding.DecodeString(string(bytes.TrimSpace([]byte(s))))
	if err != nil || len(b) != 32 {
		return k, errors.New("a key is 32 bytes in base64 (44 characters)")
	}
	copy(k[:], b)
	return k, nil
}

// loadOrCreateKey reads a base64 private key from path, or writes a fresh one there
// (mode 0600) if the file does not exist.
func loadOrCreateKey(path string) ([32]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := parseKey(string(b))
		if err != nil {
			return k, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return [32]byte{}, err
	}
	priv, _, err := driver.NewKey()
	if err != nil {
		return priv, err
	}
	return priv, os.WriteFile(path, []byte(keyEncoding.EncodeToString(priv[:])+"\n"), 0o600)
}

// admission is the set of flags by which a node gets into a server: a ticket with
// its key, the server secret (the node mints its own ticket), or --insecure-dev.
type admission struct {
	ticket, key, keyFile, secretFile string
	insecureDev                      bool
}

func (a *admission) register(fs *flag.FlagSet) {
	fs.StringVar(&a.ticket, "ticket", "", "ticket from `natpass ticket` (needs --key or --key-file)")
	fs.StringVar(&a.key, "key", "", "private key the ticket was minted for (base64)")
	fs.StringVar(&a.keyFile, "key-file", "", "file holding the private key the ticket was minted for")
	fs.StringVar(&a.secretFile, "secret-file", "", "server secret: mint a ticket locally")
	fs.BoolVar(&a.insecureDev, "insecure-dev", false, "the server runs --insecure-dev: no real ticket needed")
}

// apply fills cfg's admission fields; none set means insecure-dev when
// defaultDev (natcheck), an error otherwise.
func (a *admission) apply(cfg *driver.Config, defaultDev bool) error {
	ways := 0
	for _, set := range []bool{a.ticket != "", a.secretFile != "", a.insecureDev} {
		if set {
			ways++
		}
	}
	switch {
	case ways == 0 && defaultDev:
		cfg.InsecureDev = true
		return nil
	case ways != 1:
		return errors.New("give exactly one of --ticket, --secret-file, --insecure-dev")
	case a.insecureDev:
		cfg.InsecureDev = true
	case a.secretFile != "":
		secret, err := readSecret(a.secretFile)
		if err != nil {
			return err
		}
		cfg.Secret = secret
	default:
		t, err := ticketEncoding.DecodeString(a.ticket)
		if err != nil {
			return fmt.Errorf("--ticket: %v", err)
		}
		cfg.Ticket = t
		switch {
		case a.key != "" && a.keyFile == "":
			cfg.PrivateKey, err = parseKey(a.key)
		case a.keyFile != "" && a.key == "":
			var b []byte
			if b, err = os.ReadFile(a.keyFile); err == nil {
				cfg.PrivateKey, err = parseKey(string(b))
			}
		default:
			return errors.New("--ticket needs exactly one of --key, --key-file")
		}
		if err != nil {
			return fmt.Errorf("key: %v", err)
		}
	}
	if (a.key != "" || a.keyFile != "") && a.ticket == "" {
		// Secret and dev mode may bind a chosen key too.
		k := a.key
		if a.keyFile != "" {
			b, err := os.ReadFile(a.keyFile)
			if err != nil {
				return err
			}
			k = string(b)
		}
		var err error
		if cfg.PrivateKey, err = parseKey(k); err != nil {
			return fmt.Errorf("key: %v", err)
		}
	}
	return nil
}
