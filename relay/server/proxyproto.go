package server

// PROXY protocol version 2 (HAProxy's proxy-protocol.txt, section 2.2): a load balancer
// in front of the relay prepends a binary header naming the real client's address. The
// relay believes it only from peers in --trusted-proxies; from anyone else the header
// is not expected (and, being no HTTP, makes the request fail).
//
// The parser is written here rather than taken from a library: it is about a hundred
// lines and needs only the fixed header and the address block (v1 text headers and
// TLVs are not used), so owning it costs less than auditing and tracking a dependency.

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proxySignature starts every PROXY v2 header.
var proxySignature = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// maxProxyBlock bounds the address block (addresses and TLVs) the relay reads.
const maxProxyBlock = 1024

// ErrProxyHeader is wrapped by every *ProxyHeaderError.
var ErrProxyHeader = errors.New("relay: bad PROXY v2 header")

// ProxyHeaderError says what is wrong with a PROXY v2 header.
type ProxyHeaderError struct{ Reason string }

func (e *ProxyHeaderError) Error() string { return "relay: bad PROXY v2 header: " + e.Reason }

// Unwrap makes errors.Is(err, ErrProxyHeader) true.
func (e *ProxyHeaderError) Unwrap() error { return ErrProxyHeader }

// ProxyHeader is a parsed PROXY v2 header. Source is the client's address; it is
// invalid (the zero AddrPort) for a LOCAL command (the proxy's own health check) or an
// address family the relay does not use (UNIX, UNSPEC): then the peer's own address
// stands.
type ProxyHeader struct {
	Local       bool
	Source      netip.AddrPort
	Destination netip.AddrPort
}

// ParseProxyHeader reads one PROXY v2 header from r, exactly its bytes and no more.
func ParseProxyHeader(r io.Reader) (ProxyHeader, error) {
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return ProxyHeader{}, &ProxyHeaderError{Reason: "short header: " + err.Error()}
	}
	return parseProxyBlock(fixed, r)
}

func parseProxyBlock(fixed [16]byte, r io.Reader) (ProxyHeader, error) {
	if [12]byte(fixed[:12]) != proxySignature {
		return ProxyHeader{}, &ProxyHeaderError{Reason: "no PROXY v2 signature"}
	}
	if fixed[12]>>4 != 2 {
		return ProxyHeader{}, &ProxyHeaderError{Reason: "version is not 2"}
	}
	cmd := fixed[12] & 0x0F
	if cmd > 1 {
		return ProxyHeader{}, &ProxyHeaderError{Reason: "unknown command"}
	}
	family, proto := fixed[13]>>4, fixed[13]&0x0F
	n := int(binary.BigEndian.Uint16(fixed[14:16]))
	if n > maxProxyBlock {
		return ProxyHeader{}, &ProxyHeaderError{Reason: "address block over 1024 bytes"}
	}
	block := make([]byte, n)
	if _, err := io.ReadFull(r, block); err != nil {
		return ProxyHeader{}, &ProxyHeaderError{Reason: "short address block: " + err.Error()}
	}
	h := ProxyHeader{Local: cmd == 0}
	if h.Local {
		return h, nil // LOCAL: the block, if any, is ignored
	}
	if proto > 2 || family > 3 {
		return ProxyHeader{}, &ProxyHeaderError{Reason: "unknown address family or protocol"}
	}
	var size int
	switch family {
	case 1:
		size = 4
	case 2:
		size = 16
	default:
		return h, nil // UNSPEC or UNIX: no IP address to use
	}
	if proto != 1 {
		return ProxyHeader{}, &ProxyHeaderError{Reason: "not a stream (TCP) connection"}
	}
	if len(block) < 2*size+4 {
		return ProxyHeader{}, &ProxyHeaderError{Reason: "address block too short for its family"}
	}
	src, _ := netip.AddrFromSlice(block[:size])
	dst, _ := netip.AddrFromSlice(block[size : 2*size])
	h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(block[2*size:]))
	h.Destination = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(block[2*size+2:]))
	return h, nil // TLVs after the addresses are ignored
}

// ProxyListener takes the client's address from a PROXY v2 header on connections from
// a trusted proxy; connections from other peers are passed through untouched. The
// header is read by the connection's first Read or RemoteAddr (on the connection's
// own goroutine, never in Accept), within Timeout.
type ProxyListener struct {
	net.Listener
	Trusted []netip.Prefix
	Timeout time.Duration // 0 = 10 s
}

// Accept implements net.Listener.
func (l *ProxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || !l.trusted(c.RemoteAddr()) {
		return c, err
	}
	timeout := l.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &proxyConn{Conn: c, timeout: timeout}, nil
}

func (l *ProxyListener) trusted(a net.Addr) bool { return inPrefixes(a, l.Trusted) }

// inPrefixes reports whether a's IP address is in one of ps.
func inPrefixes(a net.Addr, ps []netip.Prefix) bool {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// proxyConn is a connection from a trusted proxy: its PROXY header is read once,
// before anything else.
type proxyConn struct {
	net.Conn
	timeout time.Duration
	once    sync.Once
	remote  net.Addr
	err     error
}

func (c *proxyConn) header() {
	c.once.Do(func() {
		c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
		h, err := ParseProxyHeader(c.Conn)
		c.Conn.SetReadDeadline(time.Time{})
		if err != nil {
			c.err = err
			return
		}
		if h.Source.IsValid() {
			c.remote = net.TCPAddrFromAddrPort(h.Source)
		}
	})
}

func (c *proxyConn) Read(b []byte) (int, error) {
	c.header()
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(b)
}

// RemoteAddr is the client's address from the header (the proxy's if it named none).
func (c *proxyConn) RemoteAddr() net.Addr {
	c.header()
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// CloseWrite and SyscallConn pass through, so the relay's lingering close and its
// read waiter work behind a proxy too (the header is read unbuffered: nothing is held
// back from the socket).
func (c *proxyConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *proxyConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("relay: connection has no file descriptor")
	}
	return sc.SyscallConn()
}

// ParseTrustedProxies parses a comma-separated list of CIDR prefixes (or single
// addresses) for --trusted-proxies.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, errors.New("--trusted-proxies: " + s + " is not a CIDR prefix (like 10.0.0.0/8) or an address")
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
