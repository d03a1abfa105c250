package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCertsDev makes a development CA, a server certificate and a client
// certificate, and checks they chain and say what they must; a second run
// on the same directory refuses to replace the CA.
func TestCertsDev(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	var out, errOut bytes.Buffer
	if code := run([]string{"certs", "dev", "--dir", dir, "--client", "L1", "--client", "site.WH1"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(read("ca.crt")) {
		t.Fatal("ca.crt holds no certificate")
	}
	verify := func(name string, usage x509.ExtKeyUsage, host string) *x509.Certificate {
		t.Helper()
		kp, err := tls.X509KeyPair(read(name+".crt"), read(name+".key"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c, _ := x509.ParseCertificate(kp.Certificate[0])
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}, DNSName: host}); err != nil {
			t.Fatalf("%s does not verify against ca.crt: %v", name, err)
		}
		return c
	}
	verify("server", x509.ExtKeyUsageServerAuth, "127.0.0.1")
	verify("server", x509.ExtKeyUsageServerAuth, "localhost")
	if c := verify("L1", x509.ExtKeyUsageClientAuth, ""); c.Subject.CommonName != "L1" {
		t.Fatalf("client certificate CN %q", c.Subject.CommonName)
	}
	if c := verify("site.WH1", x509.ExtKeyUsageClientAuth, ""); c.Subject.CommonName != "site.WH1" {
		t.Fatalf("site certificate CN %q", c.Subject.CommonName)
	}
	if st, _ := os.Stat(filepath.Join(dir, "ca.key")); st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v, want 0600", st.Mode().Perm())
	}
	errOut.Reset()
	if code := run([]string{"certs", "dev", "--dir", dir}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "already holds a CA") {
		t.Fatalf("second run: exit %d: %s", code, errOut.String())
	}
}
