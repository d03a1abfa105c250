// Package pki makes and loads the TLS material the gateway uses: a local
// certificate authority for trying TLS (coldchain certs dev), server
// certificates for the MQTT and HTTPS listeners, and client certificates
// whose common name is a device id (MQTT mutual TLS).
//
// A development CA is for a laptop or a test bench; a deployment brings
// certificates from its own CA and names them in the configuration.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a certificate authority that can sign.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// NewCA makes a self-signed P-256 CA valid for validity.
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"coldchain development"}},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key}, nil
}

// Issued is a certificate and its key, PEM-encoded.
type Issued struct{ CertPEM, KeyPEM []byte }

// Server issues a server certificate for hosts (IP addresses or DNS
// names).
func (ca *CA) Server(hosts []string, validity time.Duration) (Issued, error) {
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(tmpl, validity)
}

// Client issues a client certificate whose common name is cn: a device
// id, or site.<id> for a site, as the MQTT broker reads it.
func (ca *CA) Client(cn string, validity time.Duration) (Issued, error) {
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, validity)
}

func (ca *CA) issue(tmpl *x509.Certificate, validity time.Duration) (Issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Issued{}, err
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	tmpl.NotAfter = time.Now().Add(validity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return Issued{}, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return Issued{}, err
	}
	return Issued{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}, nil
}

// PEM returns the CA's certificate and key, PEM-encoded.
func (ca *CA) PEM() (Issued, error) {
	kb, err := x509.MarshalECPrivateKey(ca.Key)
	if err != nil {
		return Issued{}, err
	}
	return Issued{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}, nil
}

// Write writes name.crt and name.key (0600) under dir.
func (i Issued) Write(dir, name string) error {
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), i.CertPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".key"), i.KeyPEM, 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

// ServerConfig loads a server's TLS configuration from a certificate and
// key file; with a clientCA file, clients must present a certificate it
// signed (mutual TLS).
func ServerConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		pool, err := LoadPool(clientCAFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// LoadPool reads a PEM file of CA certificates.
func LoadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New(file + ": no PEM certificate in it")
	}
	return pool, nil
}

// ClientTLS is how the gateway checks an external peer's certificate (NATS,
// InfluxDB, the chain RPC, an external MQTT broker) and, optionally,
// proves itself to the peer with a certificate of its own (mutual TLS).
// The zero value is "no extra TLS settings": a tls:// or https:// URL is
// then checked against the system roots.
type ClientTLS struct {
	// CA is a PEM file of the CA certificates the peer's certificate must
	// chain to, instead of the system roots.
	CA string `yaml:"ca"`
	// Cert and Key, PEM files, are the gateway's client certificate for a
	// peer that asks for one.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// IsSet reports whether any file is named.
func (c ClientTLS) IsSet() bool { return c.CA != "" || c.Cert != "" || c.Key != "" }

// Validate reports a half-set client certificate, naming key (e.g.
// "nats.tls").
func (c ClientTLS) Validate(key string) error {
	if (c.Cert == "") != (c.Key == "") {
		return fmt.Errorf("%s.cert and %s.key: set both for a client certificate, or neither", key, key)
	}
	return nil
}

// Config loads the files into a client TLS configuration; nil without
// error when none is named. key names the setting in errors.
func (c ClientTLS) Config(key string) (*tls.Config, error) {
	if !c.IsSet() {
		return nil, nil
	}
	if err := c.Validate(key); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pool, err := LoadPool(c.CA)
		if err != nil {
			return nil, fmt.Errorf("%s.ca: %w", key, err)
		}
		cfg.RootCAs = pool
	}
	if c.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("%s.cert and %s.key: loading %s and %s: %w", key, key, c.Cert, c.Key, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
