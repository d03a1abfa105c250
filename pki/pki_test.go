package pki

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bench is a CA, a server certificate for 127.0.0.1 and a client
// certificate "gateway", written under a temporary directory.
func bench(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := ca.PEM()
	server, err := ca.Server([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Client("gateway", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for name, i := range map[string]Issued{"ca": caPEM, "server": server, "client": client} {
		if err := i.Write(dir, name); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// serveTLS accepts TLS connections with cfg and sends each peer's
// certificate common name ("-" for none), or closes on a failed
// handshake.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				tc := c.(*tls.Conn)
				if tc.Handshake() != nil {
					return
				}
				cn := "-"
				if st := tc.ConnectionState(); len(st.PeerCertificates) > 0 {
					cn = st.PeerCertificates[0].Subject.CommonName
				}
				_, _ = io.WriteString(c, cn)
			}(c)
		}
	}()
	return l.Addr().String()
}

func dialWith(addr string, cfg *tls.Config) (string, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestClientTLS: the CA file makes a peer's certificate trusted, the
// client certificate is presented to a peer that requires one, and each
// missing piece fails the handshake.
func TestClientTLS(t *testing.T) {
	dir := bench(t)
	f := func(name string) string { return filepath.Join(dir, name) }
	plain, err := ServerConfig(f("server.crt"), f("server.key"), "")
	if err != nil {
		t.Fatal(err)
	}
	mutual, err := ServerConfig(f("server.crt"), f("server.key"), f("ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	plainAddr, mutualAddr := serveTLS(t, plain), serveTLS(t, mutual)

	withCA, err := ClientTLS{CA: f("ca.crt")}.Config("nats.tls")
	if err != nil {
		t.Fatal(err)
	}
	withCert, err := ClientTLS{CA: f("ca.crt"), Cert: f("client.crt"), Key: f("client.key")}.Config("nats.tls")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, addr string
		cfg        *tls.Config
		want       string // the CN the server saw, or "" for a failed handshake
	}{
		{"CA", plainAddr, withCA, "-"},
		{"CA and client certificate", mutualAddr, withCert, "gateway"},
		{"system roots only", plainAddr, &tls.Config{}, ""},
		{"no client certificate for a mutual peer", mutualAddr, withCA, ""},
	} {
		got, err := dialWith(tc.addr, tc.cfg)
		if tc.want == "" {
			if err == nil && got != "" {
				t.Errorf("%s: handshake succeeded (server saw %q)", tc.name, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func TestClientTLSErrors(t *testing.T) {
	dir := bench(t)
	if cfg, err := (ClientTLS{}).Config("chain.tls"); cfg != nil || err != nil {
		t.Errorf("unset: %v, %v; want nil, nil", cfg, err)
	}
	for _, tc := range []struct {
		c    ClientTLS
		want string
	}{
		{ClientTLS{Cert: filepath.Join(dir, "client.crt")}, "chain.tls.cert and chain.tls.key: set both"},
		{ClientTLS{CA: filepath.Join(dir, "missing.crt")}, "chain.tls.ca: open"},
		{ClientTLS{CA: filepath.Join(dir, "client.key")}, "chain.tls.ca: " + filepath.Join(dir, "client.key") + ": no PEM certificate"},
		{ClientTLS{Cert: filepath.Join(dir, "client.crt"), Key: filepath.Join(dir, "server.key")}, "chain.tls.cert and chain.tls.key: loading"},
	} {
		_, err := tc.c.Config("chain.tls")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to contain %q", tc.c, err, tc.want)
		}
	}
}
