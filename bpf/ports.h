/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Port sets: whether a port_set (common.h) allows a port for a protocol.
 * Shared by the egress rules (egress_match.h) and the accept rule's
 * network.bind ports (egress.bpf.c), apart from egress_match.h so that
 * including it brings no map along.
 */
#ifndef MCPJAIL_PORTS_H
#define MCPJAIL_PORTS_H

#include "common.h"

/*
 * Global (not inlined, not static): the verifier checks it once per program,
 * for any port_set, port and bit, instead of once per call site and per
 * path into it; inet6 has two call sites. Its pointer argument may be NULL
 * as far as the verifier knows, hence the check.
 */
__noinline int port_allowed(const struct port_set *ps, __u32 port, __u32 bit)
{
	if (!ps)
		return 0;
	for (int i = 0; i < MAX_PORT_RANGES; i++) {
		if (i >= ps->count)
			break;
		const struct port_range *r = &ps->ranges[i];
		if ((r->protocols & bit) && port >= r->lo && port <= r->hi)
			return 1;
	}
	return 0;
}

#endif /* MCPJAIL_PORTS_H */
