package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/coldchain/coldchain/auth"
)

const tokensHelp = `Usage: coldchain tokens create --role ROLE --org ORG --name NAME [--expires 2160h]
       coldchain tokens list
       coldchain tokens revoke ID

API tokens for the HTTP API, sent as "Authorization: Bearer <token>", and
for watching alerts over MQTT: username "token", the token as password,
subscribed to coldchain/v1/{shipment}/alerts (an admin token may use +).
The registry lives in the gateway's NATS JetStream (KV bucket ` + auth.Bucket + `);
the gateway must be running, or --nats must name the external server.

Roles:
  provider  posts readings and handovers for the shipments granted to its
            org, reads them back, reads dead letters
  shipper   reads its org's shipments, watches their alerts, acknowledges
            them (the acknowledgement records the token's name, not a
            free-text "by")
  customs   reads the granted shipments' history, status, anchors and
            proof bundles
  admin     everything, every shipment

A principal sees only the shipments granted to its org (coldchain
shipments grant); any other answers 404, as if it did not exist.

create prints the token once; only its SHA-256 is stored. NAME says who
holds it ("qa@shipper.example") and is recorded with what it does. A
token expires after --expires (90 days by default; 0 for never): the
gateway then answers 401 token_expired, and its holder needs a new one.

Flags:
`

// tokensCmd runs `coldchain tokens`.
func tokensCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tokens", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reg := registryFlags(fs)
	role := fs.String("role", "", "the token's `role`: provider, shipper, customs or admin (create)")
	org := fs.String("org", "", "the `organisation` whose shipments it sees (create; not needed for admin)")
	name := fs.String("name", "", "who holds it, e.g. qa@shipper.example (create)")
	expires := fs.Duration("expires", 90*24*time.Hour, "how long the token is valid (create); 0 for never")
	fs.Usage = func() { fmt.Fprint(stderr, tokensHelp); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	usage := func(msg string) error { return usageError(fs, msg) }
	if len(pos) == 0 {
		return usage("tokens needs create, list or revoke")
	}
	verb, pos := pos[0], pos[1:]
	var p auth.Principal
	switch verb {
	case "create":
		if len(pos) != 0 {
			return usage("tokens create takes flags only")
		}
		r, err := auth.ParseRole(*role)
		if err != nil {
			return usage(err.Error())
		}
		if *name == "" || len(*name) > 64 {
			return usage("--name: required, at most 64 bytes: who holds the token")
		}
		if *org == "" && r != auth.RoleAdmin {
			return usage("--org: required for a " + string(r) + " token: it sees only its org's shipments")
		}
		p = auth.Principal{Org: *org, Role: r, Name: *name}
	case "list":
		if len(pos) != 0 {
			return usage("tokens list takes no arguments")
		}
	case "revoke":
		if len(pos) != 1 {
			return usage("tokens revoke takes one ID (see tokens list)")
		}
	default:
		return usage(fmt.Sprintf("unknown tokens command %q (create, list or revoke)", verb))
	}

	dir, ctx, done, err := reg.open()
	if err != nil {
		return err
	}
	defer done()
	switch verb {
	case "list":
		list, err := dir.Tokens(ctx)
		if err != nil {
			return err
		}
		return table(stdout, "no tokens", list, "ID\tROLE\tORG\tNAME\tEXPIRES",
			func(t auth.Credential) []any {
				exp := "never"
				if !t.Expires.IsZero() {
					exp = t.Expires.Format(time.RFC3339)
					if !time.Now().Before(t.Expires) {
						exp += " (expired)"
					}
				}
				return []any{t.ID, t.Role, t.Org, t.Name, exp}
			})
	case "revoke":
		if err := dir.Remove(ctx, auth.KindToken, pos[0]); err != nil {
			if errors.Is(err, auth.ErrUnknown) {
				return fmt.Errorf("%w (coldchain tokens list shows the ids)", err)
			}
			return err
		}
		fmt.Fprintf(stdout, "revoked token %s: the next request with it is refused, and the gateway closes the streams and MQTT sessions it has open\n", pos[0])
		return nil
	}
	if *expires < 0 {
		return usage("--expires: a duration ≥ 0, e.g. 720h; 0 for never")
	}
	var until time.Time
	if *expires > 0 {
		until = time.Now().Add(*expires)
	}
	token, c, err := auth.NewToken(p, until)
	if err != nil {
		return err
	}
	if err := dir.Add(ctx, c); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created %s token %s for %s", p.Role, c.ID, p.Name)
	if p.Org != "" {
		fmt.Fprintf(stdout, " (org %s)", p.Org)
	}
	if until.IsZero() {
		fmt.Fprint(stdout, ", never expires")
	} else {
		fmt.Fprintf(stdout, ", valid until %s", c.Expires.Format(time.RFC3339))
	}
	fmt.Fprintf(stdout, "\ntoken: %s\n(shown once: only its hash is stored)\n", token)
	return nil
}

const shipmentsHelp = `Usage: coldchain shipments grant SHIPMENT --org ORG
       coldchain shipments revoke SHIPMENT --org ORG

Grants an org's API tokens a shipment: its providers may write it, its
shippers and customs brokers read it, as their roles allow (coldchain
tokens --help). Every gateway on the same NATS sees a grant at once.

Flags:
`

// shipmentsCmd runs `coldchain shipments`.
func shipmentsCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shipments", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reg := registryFlags(fs)
	org := fs.String("org", "", "the `organisation` to grant the shipment to")
	fs.Usage = func() { fmt.Fprint(stderr, shipmentsHelp); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || (pos[0] != "grant" && pos[0] != "revoke") || *org == "" {
		fs.Usage()
		return fmt.Errorf("%w: shipments grant|revoke SHIPMENT --org ORG", errUsage)
	}
	dir, ctx, done, err := reg.open()
	if err != nil {
		return err
	}
	defer done()
	if pos[0] == "grant" {
		if err := dir.Grant(ctx, pos[1], *org); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "granted shipment %s to org %s\n", pos[1], *org)
		return nil
	}
	if err := dir.Revoke(ctx, pos[1], *org); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "revoked shipment %s from org %s\n", pos[1], *org)
	return nil
}
