package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/natpass/natpass/driver"
	"github.com/natpass/natpass/natsbus"
)

// clusterFlags are natpass server's cluster flags (DESIGN §12). Without any of
// --cluster-listen, --cluster-peers and --nats the server runs alone.
type clusterFlags struct {
	listen, peers, nats, name, secretFile string
	natsCreds, natsTokenFile              string
	drainTimeout                          time.Duration
}

func (c *clusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.listen, "cluster-listen", "", "HOST:PORT of the embedded NATS route listener: join a cluster of natpass servers")
	fs.StringVar(&c.peers, "cluster-peers", "", "routes to other servers of the cluster, nats://host:port[,nats://host:port...]")
	fs.StringVar(&c.nats, "nats", "", "use this external NATS (nats://[user:pass@]host:port[,...]) instead of an embedded one")
	fs.StringVar(&c.name, "cluster-name", "", "cluster name: NATS cluster name and subject prefix (default \"default\")")
	fs.StringVar(&c.secretFile, "cluster-secret-file", "", "file holding the cluster secret: routes without it are refused")
	fs.StringVar(&c.natsCreds, "nats-creds", "", "NATS credentials file (user JWT and nkey seed) for --nats")
	fs.StringVar(&c.natsTokenFile, "nats-token-file", "", "file holding a NATS token for --nats")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 30*time.Second,
		"on SIGTERM in a cluster, how long to wait for nodes to move to another server")
}

// enabled reports whether the flags ask for a cluster.
func (c *clusterFlags) enabled() bool { return c.listen != "" || c.peers != "" || c.nats != "" }

// start starts the cluster bus the flags describe and sets cfg's cluster fields;
// it returns nil (and changes nothing) when no cluster is asked for.
func (c *clusterFlags) start(cfg *driver.ServerConfig, log *slog.Logger) (*natsbus.Bus, error) {
	if !c.enabled() {
		if c.secretFile != "" || c.name != "" || c.natsCreds != "" || c.natsTokenFile != "" {
			return nil, errors.New("--cluster-secret-file, --cluster-name, --nats-creds and --nats-token-file need --cluster-listen, --cluster-peers or --nats")
		}
		return nil, nil
	}
	nc := natsbus.Config{ClusterName: c.name, ClusterListen: c.listen, URL: c.nats, CredsFile: c.natsCreds,
		Log: func(line string) { log.Info(line, "component", "cluster") }}
	if c.peers != "" {
		nc.ClusterPeers = strings.Split(c.peers, ",")
	}
	if c.secretFile != "" {
		secret, err := readSecret(c.secretFile)
		if err != nil {
			return nil, err
		}
		nc.Secret = secret
		cfg.ClusterSecret = secret
	}
	if c.natsTokenFile != "" {
		b, err := os.ReadFile(c.natsTokenFile)
		if err != nil {
			return nil, err
		}
		nc.Token = strings.TrimSpace(string(b))
	}
	if cfg.InsecureDev && len(cfg.ClusterSecret) == 0 {
		return nil, errors.New("--insecure-dev in a cluster needs --cluster-secret-file: the servers derive their shared keys from it")
	}
	bus, err := natsbus.Start(nc)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	cfg.Cluster = bus
	return bus, nil
}

// drain tells the server's nodes to move to another server of the cluster and
// waits for them, at most the drain timeout.
func (c *clusterFlags) drain(s *driver.Server, log *slog.Logger) {
	n := s.Stats().Sessions
	if n == 0 || c.drainTimeout <= 0 {
		return
	}
	log.Info("draining: telling the nodes to move", "nodes", n, "timeout", c.drainTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), c.drainTimeout)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		log.Warn("drain timed out: nodes still registered", "nodes", s.Stats().Sessions, "timeout", c.drainTimeout)
		return
	}
	if left := s.Stats().Sessions; left > 0 {
		log.Info("drained: silent sessions left (their nodes are gone)", "sessions", left)
		return
	}
	log.Info("drained: every node moved")
}
