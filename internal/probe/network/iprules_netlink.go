package network

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// netNetlinkRoutes reads rules and routes over rtnetlink from the daemon's
// network namespace, which is the host's (the daemon runs with host
// networking), so it does not depend on --root or on an ip binary being in
// the image, and it is not at the mercy of iproute2's text format. A nil
// handle means the calling thread's namespace; tests pass a handle bound to a
// namespace of their own.
type netNetlinkRoutes struct {
	h *netlink.Handle
}

func (s netNetlinkRoutes) handle() *netlink.Handle {
	if s.h != nil {
		return s.h
	}
	return &netlink.Handle{}
}

func netNLFamily(fam int) int {
	if fam == 6 {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

// netDump retries a dump the kernel interrupted because the table changed
// under it (pods starting); a partial dump would report missing entries.
func netDump[T any](ctx context.Context, f func() ([]T, error)) ([]T, error) {
	var err error
	for range 3 {
		var res []T
		res, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return res, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, err
}

func (s netNetlinkRoutes) Rules(ctx context.Context, fam int) ([]netRule, error) {
	h := s.handle()
	rules, err := netDump(ctx, func() ([]netlink.Rule, error) { return h.RuleList(netNLFamily(fam)) })
	if err != nil {
		return nil, err
	}
	out := make([]netRule, 0, len(rules))
	for _, r := range rules {
		out = append(out, netRule{Priority: r.Priority, Src: netPrefix(r.Src), Dst: netPrefix(r.Dst), Table: r.Table})
	}
	return out, nil
}

func (s netNetlinkRoutes) Routes(ctx context.Context, fam int) ([]netRoute, error) {
	h := s.handle()
	// Table UNSPEC with the table filter lists every table, like
	// "ip route show table all".
	routes, err := netDump(ctx, func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netNLFamily(fam), &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, err
	}
	out := make([]netRoute, 0, len(routes))
	for _, r := range routes {
		// local, broadcast and multicast entries are the kernel's own.
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		dev := r.LinkIndex
		if dev == 0 && len(r.MultiPath) > 0 {
			dev = r.MultiPath[0].LinkIndex
		}
		out = append(out, netRoute{Dst: netPrefix(r.Dst), Table: r.Table, Dev: dev})
	}
	return out, nil
}

// netPrefix converts a netlink prefix; nil (any / default) stays zero.
func netPrefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}
