package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coldchain/coldchain/pki"
)

const certsHelp = `Usage: coldchain certs dev [--dir DIR] [--hosts 127.0.0.1,localhost] [--client ID]...

Makes a local certificate authority and certificates for trying TLS on a
development machine, under DIR (./certs by default):

  ca.crt, ca.key          the CA (keep ca.key private; clients trust ca.crt)
  server.crt, server.key  for the MQTT TLS listener and HTTPS, valid for --hosts
  ID.crt, ID.key          a client certificate per --client, common name ID:
                          a registered device id, or site.ID for a site

Then, for example:
  COLDCHAIN_MQTT_TLS_LISTEN=127.0.0.1:8883 \
  COLDCHAIN_MQTT_TLS_CERT=certs/server.crt COLDCHAIN_MQTT_TLS_KEY=certs/server.key \
  COLDCHAIN_MQTT_TLS_CLIENT_CA=certs/ca.crt \
  COLDCHAIN_HTTP_TLS_CERT=certs/server.crt COLDCHAIN_HTTP_TLS_KEY=certs/server.key \
  coldchain serve
  mosquitto_pub -h 127.0.0.1 -p 8883 --cafile certs/ca.crt --cert certs/L1.crt --key certs/L1.key ...
  curl --cacert certs/ca.crt https://127.0.0.1:8080/healthz

A deployment uses certificates from its own CA instead.

Flags:
`

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// certsCmd runs `coldchain certs`.
func certsCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("certs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "certs", "where to write the certificates")
	hosts := fs.String("hosts", "127.0.0.1,localhost", "comma-separated IP addresses and names the server certificate is valid for")
	validity := fs.Duration("validity", 90*24*time.Hour, "how long the certificates are valid")
	var clients listFlag
	fs.Var(&clients, "client", "make a client certificate with this common `ID` (repeat for more)")
	fs.Usage = func() { fmt.Fprint(stderr, certsHelp); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "dev" {
		fs.Usage()
		return fmt.Errorf("%w: certs dev is the only certs command", errUsage)
	}
	if _, err := os.Stat(filepath.Join(*dir, "ca.key")); err == nil {
		return fmt.Errorf("%s already holds a CA (ca.key): remove the directory or pick another --dir, so certificates already handed out are not orphaned", *dir)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	ca, err := pki.NewCA("coldchain development CA", *validity)
	if err != nil {
		return err
	}
	caPEM, err := ca.PEM()
	if err != nil {
		return err
	}
	if err := caPEM.Write(*dir, "ca"); err != nil {
		return err
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	if len(hs) == 0 {
		return fmt.Errorf("%w: --hosts names no host", errUsage)
	}
	srv, err := ca.Server(hs, *validity)
	if err != nil {
		return err
	}
	if err := srv.Write(*dir, "server"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s: ca.crt, ca.key, server.crt, server.key (for %s)", *dir, strings.Join(hs, ", "))
	for _, id := range clients {
		if id == "" || strings.ContainsAny(id, "/\\") || id == "ca" || id == "server" {
			return fmt.Errorf("--client %q: not a usable name", id)
		}
		c, err := ca.Client(id, *validity)
		if err != nil {
			return err
		}
		if err := c.Write(*dir, id); err != nil {
			return err
		}
		fmt.Fprintf(stdout, ", %s.crt, %s.key", id, id)
	}
	fmt.Fprintf(stdout, "\nvalid until %s; coldchain certs --help shows how to use them\n", time.Now().Add(*validity).UTC().Format(time.DateOnly))
	return nil
}
