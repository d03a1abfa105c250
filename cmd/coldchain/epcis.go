package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/coldchain/coldchain/epcis"
)

const epcisHelp = `Usage: coldchain epcis SHIPMENT [--api URL] [-o FILE] [--interval D]

Fetches a shipment as a GS1 EPCIS 2.0 document (JSON-LD) from a gateway
and writes it to FILE (standard output for -): an ObjectEvent per custody
handover (bizStep commissioning, inspecting, shipping, receiving,
departing, arriving, holding), a sensor report of min, max and mean
temperature per device and interval, each excursion as an ALARM_CONDITION
(a data gap as an ERROR_CONDITION), and the shipment's Merkle log and
anchor transactions. The document is checked against the official EPCIS
2.0 JSON Schema before it is written. The mapping is docs/EPCIS.md.

Flags:
`

// epcisCmd runs `coldchain epcis`.
func epcisCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("epcis", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "http://127.0.0.1:8080", "the gateway's HTTP API `URL`")
	out := fs.String("o", "-", "write the document to `FILE` (- for standard output)")
	interval := fs.Duration("interval", 0, "length of one sensor report, 1m to 24h (default: the gateway's epcis.interval, 1h)")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	token := fs.String("token", os.Getenv("COLDCHAIN_TOKEN"), "bearer `token` for the API (a shipper's, customs' or admin's; default $COLDCHAIN_TOKEN)")
	fs.Usage = func() { fmt.Fprint(stderr, epcisHelp); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: epcis takes one SHIPMENT", errUsage)
	}
	q := url.Values{}
	if *interval != 0 {
		q.Set("interval", interval.String())
	}
	body, err := apiGet(*api, "/v1/shipments/"+url.PathEscape(pos[0])+"/epcis", q, *token, *timeout, "fetch EPCIS document")
	if err != nil {
		return err
	}
	if err := epcis.Validate(body); err != nil {
		return fmt.Errorf("the gateway answered a document that is not valid EPCIS 2.0: %w", err)
	}
	var doc epcis.Document
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("the gateway answered something that is not an EPCIS document: %w", err)
	}
	if *out == "-" {
		_, err = stdout.Write(body)
		return err
	}
	if err := os.WriteFile(*out, body, 0o644); err != nil {
		return err
	}
	anchored := "not anchored yet"
	if doc.Log != nil && len(doc.Log.Anchors) > 0 {
		a := doc.Log.Anchors[len(doc.Log.Anchors)-1]
		anchored = fmt.Sprintf("last anchor epoch %d, %d records, tx %s (%s)", a.Epoch, a.Size, a.Tx, a.State)
	}
	fmt.Fprintf(stderr, "wrote %s: shipment %s, %d EPCIS events, valid against the EPCIS 2.0 schema; %s\n",
		*out, doc.Shipment, len(doc.Body.EventList), anchored)
	return nil
}
