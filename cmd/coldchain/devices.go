package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/config"
	"github.com/coldchain/coldchain/embedded/natsserver"
	"github.com/coldchain/coldchain/record"
)

const devicesHelp = `Usage: coldchain devices add ID --org ORG [--kind device|site] [--password-stdin] [--cert FILE] [--pubkey FILE]
       coldchain devices add-key ID --pubkey FILE
       coldchain devices keygen ID [--dir DIR]
       coldchain devices list
       coldchain devices remove ID [--kind device|site]
       coldchain devices export-mosquitto [--dir DIR] [--gateway-user NAME] [--password-stdin]

Manages the identities that may connect to the gateway's MQTT broker: the
registry lives in the gateway's NATS JetStream (KV bucket ` + auth.Bucket + `),
so every gateway on that NATS sees the same devices. The gateway must be
running (its embedded NATS), or --nats must name the external server.

A device logs in with its id as the MQTT username and may publish only on
coldchain/v1/{shipment}/{its id}/readings; a site logs in as "site.ID" and
may publish only on coldchain/v1/{shipment}/handovers. Both only for
shipments granted to their org (coldchain shipments grant SHIPMENT --org
ORG). Nobody but the gateway publishes alerts.

add generates a random password and prints it once, unless
--password-stdin gives one (16 to 72 bytes, one line). Only its bcrypt
hash is stored: a lost password cannot be shown again; remove the
identity and add it with a new one.

Client certificates: on the broker's mutual-TLS listener (mqtt.tls_listen
with mqtt.tls_client_ca) a certificate of that CA whose common name is the
MQTT username logs in without a password. add --cert FILE pins the
identity to that certificate (PEM; its common name must be the username):
then only it is accepted, not any other the CA issues with the same name.
With --cert and without --password-stdin no password is made: the
identity logs in by certificate only.

Device-signed readings: keygen makes an Ed25519 key pair, DIR/ID.key (the
private key, PKCS #8 PEM, mode 0600: it belongs on the device and nowhere
else) and DIR/ID.pub; it needs no gateway. add --pubkey, or add-key for a
registered device, registers the public key (PEM, or the base64 or hex of
its 32 bytes). From then on the gateway accepts only readings of that
device that carry "sig", the Ed25519 signature of the reading's canonical
bytes (docs/RECORDS.md): unsigned ones are refused as unsigned, altered or
forged ones as bad_signature. add-key with a new key replaces the current
one; old keys are kept, so readings signed with them still verify in proof
bundles.

export-mosquitto writes DIR/passwd (a Mosquitto 2 password_file) and
DIR/acl (an acl_file) with the same rules, for a gateway behind an
external Mosquitto: each device may write its readings topic and each site
the handovers topic for the shipments granted to its org, and the gateway
user (its mqtt.username) reads and writes everything under coldchain/.
The gateway user's password is generated and printed once, or read with
--password-stdin. The files are a snapshot: export again after adding
devices or granting shipments, then make Mosquitto reload them (SIGHUP).
`

// stdin is where --password-stdin reads; tests replace it.
var stdin io.Reader = os.Stdin

// devicesCmd runs `coldchain devices`.
func devicesCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reg := registryFlags(fs)
	kind := fs.String("kind", "device", "identity `kind`: device or site")
	org := fs.String("org", "", "the `organisation` the identity belongs to (add; required)")
	fromStdin := fs.Bool("password-stdin", false, "read the password (add) or the gateway user's (export-mosquitto) from standard input instead of generating one")
	outDir := fs.String("dir", ".", "where export-mosquitto writes passwd and acl, and keygen the key pair")
	pubFile := fs.String("pubkey", "", "the device's Ed25519 public key `file` (add, add-key)")
	certFile := fs.String("cert", "", "the identity's client certificate `file` (PEM) to pin (add)")
	gwUser := fs.String("gateway-user", "coldchain-gateway", "the gateway's MQTT `username` on Mosquitto (export-mosquitto)")
	cal := addCalibrationFlags(fs)
	fs.Usage = func() { fmt.Fprint(stderr, devicesHelp+calibrationHelp+"\nFlags:\n"); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	usage := func(msg string) error { return usageError(fs, msg) }
	if len(pos) == 0 {
		return usage("devices needs add, list, remove, register, calibrate or show")
	}
	k, err := auth.ParseKind(*kind)
	if err != nil {
		return usage(err.Error())
	}
	verb, pos := pos[0], pos[1:]
	if verb == "register" || verb == "calibrate" || verb == "show" {
		if len(pos) != 1 {
			return usage("devices " + verb + " takes one device ID")
		}
		return deviceRecords(verb, pos[0], cal, func() (jetstream.JetStream, int, context.Context, func(), error) { return reg.openJS() }, stdout)
	}
	if *certFile != "" && verb != "add" {
		return usage("--cert goes with add")
	}
	var pub []byte
	if *pubFile != "" {
		if verb != "add" && verb != "add-key" {
			return usage("--pubkey goes with add or add-key")
		}
		if k != auth.KindDevice {
			return usage("only devices sign readings: --pubkey does not go with --kind site")
		}
		raw, err := os.ReadFile(*pubFile)
		if err != nil {
			return err
		}
		if pub, err = auth.ParsePublicKey(raw); err != nil {
			return fmt.Errorf("%s: %w", *pubFile, err)
		}
	}
	switch {
	case verb == "keygen":
		if len(pos) != 1 {
			return usage("devices keygen takes one device ID")
		}
		return keygen(pos[0], *outDir, stdout)
	case verb == "add-key" && (len(pos) != 1 || pub == nil):
		return usage("devices add-key takes one device ID and --pubkey FILE")
	case verb != "add" && verb != "add-key" && verb != "list" && verb != "remove" && verb != "export-mosquitto":
		return usage(fmt.Sprintf("unknown devices command %q (add, add-key, keygen, list, remove or export-mosquitto)", verb))
	case (verb == "list" || verb == "export-mosquitto") && len(pos) != 0:
		return usage("devices " + verb + " takes no arguments")
	case verb != "list" && verb != "export-mosquitto" && len(pos) != 1:
		return usage("devices " + verb + " takes one ID")
	case verb == "add" && *org == "":
		return usage("devices add needs --org: a device publishes only for the shipments granted to its org")
	}

	dir, ctx, done, err := reg.open()
	if err != nil {
		return err
	}
	defer done()

	switch verb {
	case "list":
		ids, err := dir.List(ctx)
		if err != nil {
			return err
		}
		return table(stdout, "no devices or sites registered", ids, "KIND\tID\tORG\tMQTT USERNAME\tSIGNING KEY",
			func(p auth.Principal) []any {
				key := "-"
				if p.Kind == auth.KindDevice {
					if dk, err := dir.Keys(ctx, p.ID); err == nil {
						key = auth.Fingerprint(dk.Current())
					}
				}
				return []any{p.Kind, p.ID, p.Org, auth.Username(p), key}
			})
	case "add-key":
		if _, err := dir.Lookup(ctx, auth.KindDevice, pos[0]); err != nil {
			return fmt.Errorf("%w: register the device first (coldchain devices add %s --org ORG --pubkey FILE)", err, pos[0])
		}
		return addKey(ctx, dir, pos[0], pub, stdout)
	case "remove":
		if err := dir.Remove(ctx, k, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s %s: it can no longer connect, and the gateway closes its open sessions on the embedded broker (an external Mosquitto keeps them until you export again and reload it)\n", k, pos[0])
		return nil
	}

	certOnly := *certFile != "" && !*fromStdin
	var pw []byte
	if !certOnly {
		if pw, err = password(*fromStdin); err != nil {
			return err
		}
	}
	if verb == "export-mosquitto" {
		return exportMosquitto(ctx, dir, *outDir, *gwUser, pw, !*fromStdin, stdout)
	}
	p := auth.Principal{Kind: k, ID: pos[0], Org: *org}
	c := auth.Credential{Principal: p}
	if !certOnly {
		if c, err = auth.NewCredential(p, pw); err != nil {
			return err
		}
	}
	var pinned string
	if *certFile != "" {
		raw, err := os.ReadFile(*certFile)
		if err != nil {
			return err
		}
		if pinned, err = c.PinCertificate(raw); err != nil {
			return fmt.Errorf("%s: %w", *certFile, err)
		}
	}
	if err := dir.Add(ctx, c); err != nil {
		if errors.Is(err, auth.ErrExists) {
			return fmt.Errorf("%w: to change its password, coldchain devices remove %s --kind %s, then add it again", err, p.ID, k)
		}
		return err
	}
	fmt.Fprintf(stdout, "registered %s\nMQTT username: %s\n", p, auth.Username(p))
	if pinned != "" {
		fmt.Fprintf(stdout, "client certificate pinned: SHA-256 %s\n", pinned)
	}
	if certOnly {
		fmt.Fprintln(stdout, "no password: it logs in with that certificate only, on the mutual-TLS listener")
	} else if !*fromStdin {
		fmt.Fprintf(stdout, "MQTT password: %s\n(shown once: only its hash is stored; put it on the device now)\n", pw)
	}
	if pub != nil {
		return addKey(ctx, dir, p.ID, pub, stdout)
	}
	return nil
}

func addKey(ctx context.Context, dir *auth.Directory, device string, pub []byte, stdout io.Writer) error {
	if err := dir.AddKey(ctx, device, pub, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signing key %s registered for %s: from now on its readings must carry sig (unsigned or altered ones are refused)\n", auth.Fingerprint(pub), device)
	return nil
}

// keygen writes a device key pair: dir/ID.key (0600) and dir/ID.pub.
func keygen(id, dir string, stdout io.Writer) error {
	if !record.ValidID(id) {
		return fmt.Errorf("device id %q must be 1–64 characters of A–Z, a–z, 0–9, '_' or '-'", id)
	}
	priv, pub, err := auth.GenerateKey()
	if err != nil {
		return err
	}
	kp, pp := filepath.Join(dir, id+".key"), filepath.Join(dir, id+".pub")
	// O_EXCL: never overwrite a device's key by accident.
	f, err := os.OpenFile(kp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w (keygen never overwrites a key: move it away first)", err)
	}
	if _, err := f.Write(priv); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(pp, pub, 0o644); err != nil {
		return err
	}
	k, _ := auth.ParsePublicKey(pub)
	fmt.Fprintf(stdout, "wrote %s (private: put it on the device, keep no copy) and %s\nfingerprint %s\nnext: coldchain devices add %s --org ORG --pubkey %s\n", kp, pp, auth.Fingerprint(k), id, pp)
	return nil
}

// password generates one (32 base64url characters) or reads a line from
// stdin.
func password(fromStdin bool) ([]byte, error) {
	if !fromStdin {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		return []byte(base64.RawURLEncoding.EncodeToString(b)), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the password from standard input: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}

// exportMosquitto writes dir/passwd and dir/acl from the registry.
func exportMosquitto(ctx context.Context, reg *auth.Directory, dir, gwUser string, gwPassword []byte, generated bool, stdout io.Writer) error {
	if len(gwPassword) < auth.MinPassword {
		return fmt.Errorf("gateway password: %d bytes is too short; use at least %d", len(gwPassword), auth.MinPassword)
	}
	creds, err := reg.Credentials(ctx)
	if err != nil {
		return err
	}
	grants, err := reg.GrantList(ctx)
	if err != nil {
		return err
	}
	gwHash, err := auth.MosquittoHash(gwPassword)
	if err != nil {
		return err
	}
	f, err := auth.ExportMosquitto(creds, grants, gwUser, gwHash)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	passwd, acl := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	if err := os.WriteFile(passwd, f.Passwd, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(acl, f.ACL, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d users) and %s\n", passwd, len(creds)-len(f.Skipped)+1, acl)
	for _, p := range f.Skipped {
		fmt.Fprintf(stdout, "skipped %s: registered before Mosquitto hashes were kept; remove it and add it again\n", p)
	}
	for _, p := range f.CertOnly {
		fmt.Fprintf(stdout, "%s logs in by certificate only: in the acl, not in passwd; Mosquitto admits it on a listener with require_certificate true and use_identity_as_username true (it does not pin the certificate)\n", p)
	}
	fmt.Fprintf(stdout, "\nIn mosquitto.conf:\n  per_listener_settings false\n  allow_anonymous false\n  password_file %s\n  acl_file %s\n", passwd, acl)
	fmt.Fprintf(stdout, "\nThe gateway connects as mqtt.username: %s", gwUser)
	if generated {
		fmt.Fprintf(stdout, " with mqtt.password: %s\n(shown once; set it as COLDCHAIN_MQTT_PASSWORD)\n", gwPassword)
	} else {
		fmt.Fprintln(stdout, " and the password you gave")
	}
	return nil
}

// usageError prints fs's usage and returns msg as a usage error (exit 2).
func usageError(fs *flag.FlagSet, msg string) error {
	fs.Usage()
	return fmt.Errorf("%w: %s", errUsage, msg)
}

// registry is where the registry commands find the identity registry.
type registry struct{ path, url *string }

// registryFlags adds --config and --nats to fs.
func registryFlags(fs *flag.FlagSet) registry {
	return registry{
		path: fs.String("config", "", "YAML configuration `file`: its nats.url (or nats.listen) and nats.token say where the registry is"),
		url:  fs.String("nats", "", "NATS `URL` of the gateway (default: from the configuration, nats://127.0.0.1:4222)"),
	}
}

// open connects to the NATS that holds the identity registry: --nats if
// given, else the configuration's nats.url, else its embedded server's
// nats.listen (the gateway must be running).
func (r registry) open() (*auth.Directory, context.Context, func(), error) {
	js, replicas, ctx, done, err := r.openJS()
	if err != nil {
		return nil, nil, nil, err
	}
	dir, err := auth.OpenDirectory(ctx, js, replicas)
	if err != nil {
		done()
		return nil, nil, nil, err
	}
	return dir, ctx, done, nil
}

// openJS connects to the gateway's NATS (as open) and returns its
// JetStream, the streams' replica count and a context for the command.
func (r registry) openJS() (jetstream.JetStream, int, context.Context, func(), error) {
	fail := func(err error) (jetstream.JetStream, int, context.Context, func(), error) {
		return nil, 0, nil, nil, err
	}
	cfg, err := config.Load(*r.path, os.LookupEnv)
	if err != nil {
		return fail(err)
	}
	url := *r.url
	if url == "" {
		url = cfg.NATS.URL
	}
	if url == "" {
		url = "nats://" + cfg.NATS.Listen
	}
	opts := []nats.Option{nats.Name("coldchain registry"), nats.Timeout(5 * time.Second)}
	peer, err := cfg.NATS.ClientOptions() // nats.token and nats.tls
	if err != nil {
		return fail(err)
	}
	opts = append(opts, peer...)
	if cfg.NATS.Embedded() && cfg.NATS.Token == "" {
		// The gateway's embedded server requires the token it keeps in
		// the data dir; this command runs on the same machine as it.
		tok, err := natsserver.ReadToken(cfg.NATSTokenFile())
		switch {
		case err == nil:
			opts = append(opts, nats.Token(tok))
		case !errors.Is(err, os.ErrNotExist):
			return fail(err)
		case *r.url == "":
			return fail(fmt.Errorf("%w: start the gateway with this configuration first (coldchain serve writes the embedded NATS token there), or set nats.token", err))
		}
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fail(fmt.Errorf("cannot reach NATS at %s: %w (start the gateway, coldchain serve, or pass --nats URL)", url, err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := func() { cancel(); nc.Close() }
	js, err := jetstream.New(nc)
	if err != nil {
		done()
		return fail(err)
	}
	return js, cfg.NATS.Streams.Replicas, ctx, done, nil
}

// table prints rows under header, or empty when there are none.
func table[T any](w io.Writer, empty string, rows []T, header string, cells func(T) []any) error {
	if len(rows) == 0 {
		_, err := fmt.Fprintln(w, empty)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		c := cells(r)
		fmt.Fprintf(tw, strings.TrimSuffix(strings.Repeat("%v\t", len(c)), "\t")+"\n", c...)
	}
	return tw.Flush()
}
