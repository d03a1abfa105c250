package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/auth/authtest"
	"github.com/coldchain/coldchain/journal"
	"github.com/coldchain/coldchain/pki"
)

// TestTLS runs the gateway with plaintext MQTT off, MQTT over mutual TLS
// and HTTPS: a registered device logs in with its client certificate
// alone and its reading is journaled; an unregistered one, one from
// another CA and one with no certificate are refused; the API answers
// over HTTPS only.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := ca.PEM()
	if err := caPEM.Write(dir, "ca"); err != nil {
		t.Fatal(err)
	}
	srv, err := ca.Server([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Write(dir, "server"); err != nil {
		t.Fatal(err)
	}
	clientCert := func(ca *pki.CA, cn string) tls.Certificate {
		t.Helper()
		c, err := ca.Client(cn, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return kp
	}
	other, err := pki.NewCA("another CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t.TempDir())
	b := &cfg.MQTT.Broker
	b.Listen, b.TLSListen, b.AllowAnonymous = "", "127.0.0.1:0", false
	b.TLSCert, b.TLSKey, b.TLSClientCA = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt")
	cfg.HTTP.TLSCert, cfg.HTTP.TLSKey = b.TLSCert, b.TLSKey
	gw := startGateway(t, cfg)
	defer gw.stop()
	if gw.g.MQTTAddr() != "" || gw.g.MQTTTLSAddr() == "" {
		t.Fatalf("MQTT plaintext %q, TLS %q: want TLS only", gw.g.MQTTAddr(), gw.g.MQTTTLSAddr())
	}

	ctx := context.Background()
	reg := authtest.Open(t, gw.g.NATSURL())
	c, err := auth.NewCredential(auth.Principal{Kind: auth.KindDevice, ID: "L1", Org: "acme"}, []byte("unused-password-0001"))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Add(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := reg.Grant(ctx, "SHP-1", "acme"); err != nil {
		t.Fatal(err)
	}

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM.CertPEM)
	dial := func(id string, certs ...tls.Certificate) (paho.Client, error) {
		return dialMQTT(t, paho.NewClientOptions().AddBroker("ssl://"+gw.g.MQTTTLSAddr()).SetClientID(id).
			SetTLSConfig(&tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12}))
	}
	if _, err := dial("none"); err == nil {
		t.Error("a client without a certificate connected")
	}
	if _, err := dial("other", clientCert(other, "L1")); err == nil {
		t.Error("a certificate from another CA connected")
	}
	if _, err := dial("L9", clientCert(ca, "L9")); err == nil {
		t.Error("an unregistered device's certificate connected")
	}
	// The grant reaches the broker through a KV watch: retry until then.
	deadline := time.Now().Add(10 * time.Second)
	for {
		dev, err := dial("L1", clientCert(ca, "L1"))
		if err != nil {
			t.Fatalf("registered device with its certificate: %v", err)
		}
		tok := dev.Publish("coldchain/v1/SHP-1/L1/readings", 1, false, readingJSON(1, 5))
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading over mutual TLS refused: %v", tok.Error())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ids := streamIDs(t, gw.g.NATSURL(), journal.StreamReadings); len(ids) != 1 {
		t.Fatalf("journaled %v, want L1's one reading", ids)
	}

	// L2 is pinned to one certificate (devices add --cert) and has no
	// password: another certificate of the same CA and name is refused.
	pinned, err := ca.Client("L2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c2 := auth.Credential{Principal: auth.Principal{Kind: auth.KindDevice, ID: "L2", Org: "acme"}}
	if _, err := c2.PinCertificate(pinned.CertPEM); err != nil {
		t.Fatal(err)
	}
	if err := reg.Add(ctx, c2); err != nil {
		t.Fatal(err)
	}
	pinnedKP, err := tls.X509KeyPair(pinned.CertPEM, pinned.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial("L2-twin", clientCert(ca, "L2")); err == nil {
		t.Error("a certificate other than the pinned one connected")
	}
	if _, err := dial("L2", pinnedKP); err != nil {
		t.Errorf("the pinned certificate: %v", err)
	}

	https := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}
	resp, err := https.Get("https://" + gw.g.HTTPAddr() + "/healthz")
	if err != nil {
		t.Fatalf("HTTPS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS /healthz: %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + gw.g.HTTPAddr() + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("the API answered plaintext HTTP")
		}
	}
}
