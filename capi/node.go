package main

/*
typedef const char np_cchar;
typedef const void np_cvoid;
#include "natpass.h"
*/
import "C"

import (
	"context"
	"net/netip"
	"sync"
	"unsafe"

	"github.com/natpass/natpass/driver"
)

// nodeState is a driver-level node behind a natpass_node handle, with the
// handles of its connections (freed with it).
type nodeState struct {
	n *driver.Node

	mu    sync.Mutex
	conns map[*driver.Conn]int64 // one handle per Conn: Connect again gives the same
}

//export natpass_listen
func natpass_listen(h C.natpass_config) C.natpass_node {
	cfg, err := configOf(h)
	if err != nil {
		return C.natpass_node(fail(err))
	}
	n, err := driver.Listen(context.Background(), cfg)
	if err != nil {
		return C.natpass_node(fail(err))
	}
	return C.natpass_node(newHandle(&nodeState{n: n, conns: map[*driver.Conn]int64{}}))
}

// connHandle returns c's handle, making one the first time.
func (ns *nodeState) connHandle(c *driver.Conn) C.natpass_conn {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if h, ok := ns.conns[c]; ok {
		return C.natpass_conn(h)
	}
	h := newHandle(&connState{c: c, owner: ns})
	ns.conns[c] = h
	return C.natpass_conn(h)
}

// forget drops c's handle (natpass_conn_close).
func (ns *nodeState) forget(c *driver.Conn) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	freeHandle(ns.conns[c])
	delete(ns.conns, c)
}

//export natpass_connect
func natpass_connect(h C.natpass_node, peer *C.np_cchar, timeoutMS C.int64_t) C.natpass_conn {
	ns, err := lookup[*nodeState](int64(h), "node")
	if err != nil {
		return C.natpass_conn(fail(err))
	}
	if peer == nil {
		return C.natpass_conn(fail(errCode(codeInvalid, "natpass_connect: peer must not be NULL")))
	}
	ctx, cancel := waitCtx(timeoutMS, true)
	defer cancel()
	c, err := ns.n.Connect(ctx, C.GoString((*C.char)(peer)))
	if err != nil {
		return C.natpass_conn(fail(err))
	}
	return ns.connHandle(c)
}

//export natpass_accept
func natpass_accept(h C.natpass_node, timeoutMS C.int64_t) C.natpass_conn {
	ns, err := lookup[*nodeState](int64(h), "node")
	if err != nil {
		return C.natpass_conn(fail(err))
	}
	ctx, cancel := waitCtx(timeoutMS, true)
	defer cancel()
	c, err := ns.n.Accept(ctx)
	if err != nil {
		return C.natpass_conn(fail(err))
	}
	return ns.connHandle(c)
}

// nodeAddr copies one of the node's addresses into the caller's buffer.
func nodeAddr(h C.natpass_node, buf *C.char, size C.size_t, which func(*driver.Node) netip.AddrPort) C.int64_t {
	ns, err := lookup[*nodeState](int64(h), "node")
	if err != nil {
		return C.int64_t(fail(err))
	}
	return copyString(addrText(which(ns.n)), buf, size)
}

//export natpass_local_addr
func natpass_local_addr(h C.natpass_node, buf *C.char, size C.size_t) C.int64_t {
	return nodeAddr(h, buf, size, (*driver.Node).LocalAddr)
}

//export natpass_observed_addr
func natpass_observed_addr(h C.natpass_node, buf *C.char, size C.size_t) C.int64_t {
	return nodeAddr(h, buf, size, (*driver.Node).Observed)
}

//export natpass_server_addr
func natpass_server_addr(h C.natpass_node, buf *C.char, size C.size_t) C.int64_t {
	return nodeAddr(h, buf, size, (*driver.Node).Server)
}

//export natpass_node_stats_get
func natpass_node_stats_get(h C.natpass_node, out *C.natpass_node_stats, size C.size_t) C.int32_t {
	ns, err := lookup[*nodeState](int64(h), "node")
	if err != nil {
		return status(err)
	}
	if out == nil {
		return status(errCode(codeInvalid, "natpass_node_stats_get: out must not be NULL"))
	}
	st := ns.n.Stats()
	cs := C.natpass_node_stats{
		datagrams_in: C.uint64_t(st.DatagramsIn), bytes_in: C.uint64_t(st.BytesIn),
		datagrams_out: C.uint64_t(st.DatagramsOut), bytes_out: C.uint64_t(st.BytesOut),
		rejected: C.uint64_t(st.Rejected), write_errors: C.uint64_t(st.WriteErrors),
		sockets: C.int64_t(st.Sockets),
	}
	copyStruct(unsafe.Pointer(out), size, &cs)
	return 0
}

//export natpass_close
func natpass_close(h C.natpass_node) C.int32_t {
	ns, err := lookup[*nodeState](int64(h), "node")
	if err != nil {
		return status(err)
	}
	freeHandle(int64(h))
	err = ns.n.Close()
	ns.mu.Lock()
	for _, ch := range ns.conns {
		freeHandle(ch)
	}
	clear(ns.conns)
	ns.mu.Unlock()
	return status(err)
}
