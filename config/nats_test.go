package config

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/coldchain/coldchain/pki"
	"github.com/coldchain/coldchain/pki/pkitest"
)

// TestNATSClientOptionsTLS: nats.tls lets the gateway connect to a NATS
// that verifies client certificates; without the CA or the certificate it
// does not connect.
func TestNATSClientOptionsTLS(t *testing.T) {
	files := pkitest.New(t, "coldchain-gateway")
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TLS: true, TLSVerify: true, TLSConfig: files.Server(t, true), TLSTimeout: 2})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	url := ns.ClientURL()
	connect := func(n NATS) error {
		opts, err := n.ClientOptions()
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
		if err == nil {
			defer nc.Close()
			return nc.Flush()
		}
		return err
	}
	if err := connect(NATS{URL: url, TLS: files.Client()}); err != nil {
		t.Fatalf("with nats.tls: %v", err)
	}
	for name, tls := range map[string]pki.ClientTLS{
		"system roots":          {},
		"no client certificate": {CA: files.CA},
		"another CA":            {CA: files.OtherCA, Cert: files.ClientCert, Key: files.ClientKey},
	} {
		if err := connect(NATS{URL: url, TLS: tls}); err == nil {
			t.Errorf("%s: connected", name)
		}
	}
}
