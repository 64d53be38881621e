package main

import (
	"context"
	"flag"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/natpass/natpass/driver"
)

func TestListenFlagsByFamily(t *testing.T) {
	parse := func(args ...string) (driver.ServerConfig, error) {
		fs := flag.NewFlagSet("server", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var f serverFlags
		f.register(fs)
		if err := fs.Parse(args); err != nil {
			return driver.ServerConfig{}, err
		}
		var cfg driver.ServerConfig
		return cfg, applyListen(&cfg, f.listen, f.listen2, f.altPort)
	}
	cfg, err := parse("--listen", "[::]:3478", "--listen", "0.0.0.0:3478", "--listen2", "192.0.2.2:3478", "--listen2", "[2001:db8::2]:3478", "--alt-port", "0.0.0.0:3479")
	if err != nil {
		t.Fatal(err)
	}
	want := driver.ServerConfig{Listen: "[::]:3478", AltAddr: "[2001:db8::2]:3478", OtherListen: "0.0.0.0:3478", OtherAltAddr: "192.0.2.2:3478", OtherAltPort: "0.0.0.0:3479"}
	if cfg.Listen != want.Listen || cfg.AltAddr != want.AltAddr || cfg.AltPort != "" || cfg.OtherListen != want.OtherListen ||
		cfg.OtherAltAddr != want.OtherAltAddr || cfg.OtherAltPort != want.OtherAltPort {
		t.Fatalf("two families: %+v, want %+v", cfg, want)
	}
	if cfg, err = parse("--listen", "127.0.0.1:1", "--alt-port", "off"); err != nil || cfg.OtherListen != "" || cfg.AltPort != "off" {
		t.Fatalf("one family: %+v %v", cfg, err)
	}
	for _, bad := range [][]string{
		{"--listen", "127.0.0.1:1", "--listen", "127.0.0.2:1"}, // one family twice
		{"--listen", "127.0.0.1:1", "--listen2", "[::1]:2"},    // listen2 of a family not listened on
		{"--listen", "127.0.0.1:1", "--alt-port", "[::1]:2"},   // alt port likewise
		{"--listen", "natpass.example:3478"},                   // not an IP
		{"--listen2", "127.0.0.2:1"},                           // no --listen
		{"--listen", "127.0.0.1:1,[::1]:1,[::2]:1"},            // a list of three
	} {
		if _, err := parse(bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestServerListensOnBothFamilies: natpass server --listen V4 --listen V6 serves
// a node on each family (NATPASS_LISTEN gives both as a list too).
func TestServerListensOnBothFamilies(t *testing.T) {
	c6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback (::1): %v", err)
	}
	c6.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t.Setenv("NATPASS_LISTEN", "127.0.0.1:0,[::1]:0")
	up := make(chan serverUp, 1)
	exited := make(chan int, 1)
	go func() {
		exited <- serverMain(ctx, []string{"--insecure-dev", "--quiet"}, io.Discard, func(u serverUp) { up <- u })
	}()
	var srv *driver.Server
	select {
	case u := <-up:
		srv = u.srv
	case code := <-exited:
		t.Fatalf("server exited %d", code)
	}
	var v4, v6 string
	for _, a := range srv.Addrs() {
		switch {
		case a.Addr().Is4() && v4 == "" && a.Addr().String() == "127.0.0.1":
			v4 = a.String()
		case a.Addr().Is6() && v6 == "" && a.Addr().String() == "::1":
			v6 = a.String()
		}
	}
	if v4 == "" || v6 == "" {
		t.Fatalf("server sockets %v: want one on 127.0.0.1 and one on ::1", srv.Addrs())
	}
	for _, server := range []string{v4, v6} {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		n, err := driver.Listen(rctx, driver.Config{Server: server, ID: "fam-" + server, InsecureDev: true})
		rcancel()
		if err != nil {
			t.Fatalf("register over %s: %v", server, err)
		}
		overIPv4 := !strings.HasPrefix(server, "[")
		if got := n.Observed(); got.Addr().Is4() != overIPv4 {
			t.Errorf("registered over %s, observed %v", server, got)
		}
		n.Close()
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("server exit %d", code)
	}
}
