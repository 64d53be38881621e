package sim

import "net/netip"

// Reboot forgets every mapping, filter entry and [UNREPLIED] entry of the box, as a
// power cycle of a home router does. Connections through it survive only if the
// machines behind notice and open new mappings.
func (b *Box) Reboot() {
	// Collected first: remove edits the map being walked. The order does not reach
	// any output (removed mappings only return to the pool).
	live := make([]*mapping, 0, len(b.mappings))
	for _, m := range b.mappings {
		live = append(live, m)
	}
	for _, m := range live {
		b.remove(m)
	}
	clear(b.permits)
	clear(b.unreplied)
	b.hot, b.hotKey = nil, mapKey{}
}

// Renumber gives a translating box a new external address and reboots it: the
// network in front handed out another address, or, as the peers see it, the host
// behind moved to another NAT of the same kind. It returns the new address.
func (b *Box) Renumber() netip.Addr {
	if b.cfg.NoTranslation {
		panic("sim: Renumber of firewall " + b.name)
	}
	// The new address is drawn while the old one is still routed, so it differs.
	var ext netip.Addr
	if b.net == b.sim.core {
		ext = b.sim.corePublicAddr(true)
	} else {
		ext = b.sim.autoAddr(b.net)
	}
	delete(b.net.routes, b.addrs[0])
	b.net.hotRoute = nil
	b.addrs[0] = ext
	b.sim.addRoute(b.net, ext, &b.attachment)
	b.Reboot()
	return ext
}
