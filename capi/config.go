package main

/*
typedef const char np_cchar;
typedef const void np_cvoid;
#include "natpass.h"
*/
import "C"

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/node"
	"github.com/natpass/natpass/rendezvous"
)

// config is what natpass_config_set gathered: natpass cat's flags, checked as
// they are set where a value can be checked alone.
type config struct {
	mu sync.Mutex
	driver.Config
	keySet bool // "key" or "key-file" given
}

// Encodings of natpass ticket's output (cmd/natpass/ticket.go).
var (
	ticketEncoding = base64.RawURLEncoding
	keyEncoding    = base64.StdEncoding
)

//export natpass_config_new
func natpass_config_new() C.natpass_config {
	return C.natpass_config(newHandle(&config{}))
}

//export natpass_config_free
func natpass_config_free(h C.natpass_config) C.int32_t {
	if _, err := lookup[*config](int64(h), "config"); err != nil {
		return status(err)
	}
	freeHandle(int64(h))
	return 0
}

//export natpass_config_set
func natpass_config_set(h C.natpass_config, name, value *C.np_cchar) C.int32_t {
	c, err := lookup[*config](int64(h), "config")
	if err != nil {
		return status(err)
	}
	if name == nil || value == nil {
		return status(errCode(codeInvalid, "natpass_config_set: name and value must not be NULL"))
	}
	n, v := C.GoString((*C.char)(name)), C.GoString((*C.char)(value))
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.set(n, v); err != nil {
		return status(errCode(codeInvalid, "natpass_config_set %q: %v", n, err))
	}
	return 0
}

func (c *config) set(name, v string) error {
	var err error
	switch name {
	case "server":
		c.Servers, err = parseServers(v)
	case "id":
		c.ID = v
	case "ticket":
		c.Ticket, err = ticketEncoding.DecodeString(strings.TrimSpace(v))
	case "key":
		c.PrivateKey, err = parseKey(v)
		c.keySet = err == nil
	case "key-file":
		var b []byte
		if b, err = os.ReadFile(v); err == nil {
			c.PrivateKey, err = parseKey(string(b))
		}
		c.keySet = err == nil
	case "secret-file":
		c.Secret, err = readSecret(v)
	case "insecure-dev":
		c.InsecureDev, err = parseBool(v)
	case "listen":
		c.Listen = v
	case "relay":
		c.Relay, err = parseRelay(v)
	case "register-timeout":
		c.RegisterTimeout, err = time.ParseDuration(v)
	default:
		err = fmt.Errorf("no such option")
	}
	return err
}

// parseServers splits HOST:PORT[,HOST:PORT...].
func parseServers(v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if _, _, err := net.SplitHostPort(f); err != nil {
			return nil, fmt.Errorf("server %q: want HOST:PORT", f)
		}
		out = append(out, f)
	}
	return out, nil
}

func parseKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := keyEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != 32 {
		return k, fmt.Errorf("a key is 32 bytes in base64 (44 characters)")
	}
	copy(k[:], b)
	return k, nil
}

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

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off", "":
		return false, nil
	}
	return false, fmt.Errorf("want 1 or 0")
}

func parseRelay(v string) (node.RelayPolicy, error) {
	p, ok := map[string]node.RelayPolicy{"auto": node.RelayAuto, "force": node.RelayForce, "never": node.RelayNever}[v]
	if !ok {
		return 0, fmt.Errorf("want auto, force or never")
	}
	return p, nil
}

// driverConfig is a copy of the gathered configuration, checked as a whole.
func (c *config) driverConfig() (driver.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dc := c.Config
	dc.Servers = append([]string(nil), c.Servers...)
	if len(dc.Ticket) > 0 && !c.keySet {
		return dc, fmt.Errorf("%w: a ticket needs the key it was minted for (\"key\" or \"key-file\")", driver.ErrBadConfig)
	}
	return dc, nil
}

// configOf looks h up and returns its driver configuration.
func configOf(h C.natpass_config) (driver.Config, error) {
	c, err := lookup[*config](int64(h), "config")
	if err != nil {
		return driver.Config{}, err
	}
	return c.driverConfig()
}

// addrPort parses an "IP:PORT" argument.
func addrPort(what string, s *C.np_cchar) (netip.AddrPort, error) {
	if s == nil {
		return netip.AddrPort{}, errCode(codeInvalid, "natpass: %s must not be NULL", what)
	}
	ap, err := netip.ParseAddrPort(C.GoString((*C.char)(s)))
	if err != nil {
		return ap, errCode(codeInvalid, "natpass: %s: %v", what, err)
	}
	return ap, nil
}
