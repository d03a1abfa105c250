// Package pkitest makes throwaway TLS material for tests: a CA, a server
// certificate for the loopback addresses and a client certificate, as
// files, the way a deployment names them in its configuration.
package pkitest

import (
	"crypto/tls"
	"path/filepath"
	"testing"
	"time"

	"github.com/coldchain/coldchain/pki"
)

// Files are the paths of a test bench's PEM files.
type Files struct {
	Dir                   string
	CA                    string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	OtherCA               string // a second CA, that signed nothing here
	clientCN              string
}

// New writes a CA, a server certificate for 127.0.0.1, ::1 and localhost,
// and a client certificate with common name clientCN under a temporary
// directory of t.
func New(t testing.TB, clientCN string) Files {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("coldchain test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Server([]string{"127.0.0.1", "::1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Client(clientCN, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := ca.PEM()
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, err := other.PEM()
	if err != nil {
		t.Fatal(err)
	}
	for name, i := range map[string]pki.Issued{"ca": caPEM, "other-ca": otherPEM, "server": server, "client": client} {
		if err := i.Write(dir, name); err != nil {
			t.Fatal(err)
		}
	}
	f := func(name string) string { return filepath.Join(dir, name) }
	return Files{Dir: dir, CA: f("ca.crt"), OtherCA: f("other-ca.crt"), ServerCert: f("server.crt"), ServerKey: f("server.key"),
		ClientCert: f("client.crt"), ClientKey: f("client.key")}
}

// Client is the gateway's side: trust the CA, present the client
// certificate.
func (f Files) Client() pki.ClientTLS {
	return pki.ClientTLS{CA: f.CA, Cert: f.ClientCert, Key: f.ClientKey}
}

// Server is a server's TLS configuration; mutual requires a client
// certificate signed by the CA.
func (f Files) Server(t testing.TB, mutual bool) *tls.Config {
	t.Helper()
	ca := ""
	if mutual {
		ca = f.CA
	}
	cfg, err := pki.ServerConfig(f.ServerCert, f.ServerKey, ca)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
