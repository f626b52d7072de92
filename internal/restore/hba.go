package restore

import (
	"net"
	"net/netip"
	"strings"
)

// LocalOnlyHBA turns a restored pg_hba.conf into the sandbox's: unix-socket lines as
// they were, TCP lines narrowed to the loopback addresses they covered (127.0.0.1/32,
// ::1/128) with their own authentication method, and everything else dropped (other
// networks, host names, hostssl: the sandbox runs without SSL, include directives:
// they name files of production's host). Production's own choices of who may log in
// and how stay; nobody reaches the copy from another host even if listen_addresses
// were changed. When no line survives, local peer and loopback scram-sha-256 lines
// are written.
func LocalOnlyHBA(orig []byte) []byte {
	var b strings.Builder
	b.WriteString("# walkeeper sandbox: the restored pg_hba.conf narrowed to local connections\n")
	kept := 0
	for _, line := range hbaLines(string(orig)) {
		toks := hbaTokens(line)
		if len(toks) == 0 {
			continue
		}
		switch toks[0] { // keywords are case-sensitive, as PostgreSQL reads them
		case "local":
			if len(toks) >= 4 {
				b.WriteString(strings.Join(toks, " ") + "\n")
				kept++
			}
		case "host", "hostnossl", "hostgssenc", "hostnogssenc":
			if len(toks) < 5 {
				continue
			}
			addrs, rest := loopbackOf(toks[3], toks[4:])
			for _, a := range addrs {
				b.WriteString(strings.Join(append([]string{toks[0], toks[1], toks[2], a}, rest...), " ") + "\n")
				kept++
			}
		}
	}
	if kept == 0 {
		b.WriteString("local all all peer\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n")
	}
	return []byte(b.String())
}

// loopbackOf maps a pg_hba address field (and the fields after it) to the loopback
// addresses it covers and the fields that follow the address (a separate netmask
// field consumed).
func loopbackOf(addr string, after []string) ([]string, []string) {
	v4, v6 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")
	switch addr {
	case "all", "samehost", "samenet", "localhost":
		return []string{"127.0.0.1/32", "::1/128"}, after
	}
	var pfx netip.Prefix
	if p, err := netip.ParsePrefix(addr); err == nil {
		pfx = p
	} else if ip, err := netip.ParseAddr(addr); err == nil && len(after) > 0 {
		mask := net.ParseIP(after[0])
		if mask == nil {
			return nil, nil
		}
		if ip.Is4() {
			mask = mask.To4()
		}
		ones, bits := net.IPMask(mask).Size()
		if bits == 0 {
			return nil, nil
		}
		pfx = netip.PrefixFrom(ip, ones)
		after = after[1:]
	} else {
		return nil, nil // a host name or domain: not evaluated, dropped
	}
	if len(after) == 0 {
		return nil, nil // no method
	}
	var out []string
	if pfx.Contains(v4) {
		out = append(out, "127.0.0.1/32")
	}
	if pfx.Contains(v6) {
		out = append(out, "::1/128")
	}
	return out, after
}

// hbaLines splits pg_hba.conf into records: comments stripped (outside quotes),
// backslash continuations joined.
func hbaLines(s string) []string {
	var out []string
	var cur strings.Builder
	for _, raw := range strings.Split(s, "\n") {
		raw = strings.TrimRight(raw, "\r")
		line := stripComment(raw)
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

func stripComment(line string) string {
	inQ := false
	for i, r := range line {
		switch {
		case r == '"':
			inQ = !inQ
		case r == '#' && !inQ:
			return line[:i]
		}
	}
	return line
}

// hbaTokens splits one record into its fields, each as written (quotes kept).
func hbaTokens(line string) []string {
	var out []string
	var cur strings.Builder
	inQ := false
	for _, r := range line {
		switch {
		case r == '"':
			inQ = !inQ
			cur.WriteRune(r)
		case (r == ' ' || r == '\t') && !inQ:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}
