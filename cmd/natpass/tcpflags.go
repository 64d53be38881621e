package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"

	"github.com/natpass/natpass/driver"
)

// The TCP/TLS fallback's flags (PROTOCOL.md §14): the server's listener, and the
// node's way to it when UDP to the server is blocked.

// serverTCPFlags are natpass server's --tcp-listen, --tls-cert and --tls-key.
type serverTCPFlags struct{ listen, cert, key string }

func (f *serverTCPFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "tcp-listen", "", "HOST:PORT of a TCP listener for nodes whose UDP is blocked (default: none)")
	fs.StringVar(&f.cert, "tls-cert", "", "PEM certificate (chain): --tcp-listen speaks TLS (needs --tls-key)")
	fs.StringVar(&f.key, "tls-key", "", "PEM private key of --tls-cert")
}

// apply sets cfg's TCP listener and TLS configuration from the flags.
func (f *serverTCPFlags) apply(cfg *driver.ServerConfig) error {
	if (f.cert == "") != (f.key == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if f.cert != "" && f.listen == "" {
		return errors.New("--tls-cert needs --tcp-listen")
	}
	cfg.TCPListen = f.listen
	if f.cert == "" {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return nil
}

// nodeTCPFlags are a node's --server-tcp, --server-tls, --server-tls-ca and
// --server-tls-name.
type nodeTCPFlags struct {
	addr, ca, name string
	tls            bool
}

func (f *nodeTCPFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "server-tcp", "", "HOST:PORT of the server's TCP listener, used while UDP to the server gets no answer (default: none)")
	fs.BoolVar(&f.tls, "server-tls", false, "--server-tcp speaks TLS; the certificate is checked against the system's roots")
	fs.StringVar(&f.ca, "server-tls-ca", "", "PEM file of the CA (or self-signed certificate) that --server-tcp's TLS certificate is checked against (implies --server-tls)")
	fs.StringVar(&f.name, "server-tls-name", "", "name the TLS certificate must carry (default: --server-tcp's host)")
}

// apply sets cfg's fallback from the flags.
func (f *nodeTCPFlags) apply(cfg *driver.Config) error {
	if f.addr == "" {
		if f.tls || f.ca != "" || f.name != "" {
			return errors.New("--server-tls, --server-tls-ca and --server-tls-name need --server-tcp")
		}
		return nil
	}
	if _, _, err := net.SplitHostPort(f.addr); err != nil {
		return fmt.Errorf("--server-tcp %q: want HOST:PORT", f.addr)
	}
	cfg.ServerTCP = f.addr
	if !f.tls && f.ca == "" {
		return nil
	}
	tc := &tls.Config{ServerName: f.name, MinVersion: tls.VersionTLS12}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return fmt.Errorf("--server-tls-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--server-tls-ca %s: no PEM certificate in it", f.ca)
		}
	}
	cfg.ServerTLS = tc
	return nil
}
