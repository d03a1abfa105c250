package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/coldchain/coldchain/custody"
	"github.com/coldchain/coldchain/excursion"
	"github.com/coldchain/coldchain/report"
)

const reportHelp = `Usage: coldchain report SHIPMENT [--api URL] [-o FILE] [--bundle-out FILE]
       coldchain report --bundle FILE [-o FILE]

Writes a shipment's traceability report, a PDF for a QA person or a
regulator's reviewer: the shipment summary, the temperature chart against
the alarm band, every excursion with its transitions, acknowledgements and
MKT, the custody timeline and its checks, the devices' calibration, the
anchor (chain, contract, transaction) and the exact coldchain verify
command that checks it.

The report is made from the shipment's proof bundle alone, so it states
nothing the bundle does not prove. With SHIPMENT it fetches the bundle
from the gateway (as coldchain proof does), writes it beside the report
(--bundle-out, default SHIPMENT.bundle.json) and prints its SHA-256 in
the report, tying the two files together. With --bundle it reports on a
bundle file you already have, offline.

The gateway serves the same report at GET /v1/shipments/{id}/report.pdf,
with the shipment's own alarm profile; here the band is --low … --high.

Flags:
`

// reportCmd runs `coldchain report`.
func reportCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "http://127.0.0.1:8080", "the gateway's HTTP API `URL`")
	token := fs.String("token", os.Getenv("COLDCHAIN_TOKEN"), "bearer `token` for the API (a shipper's, customs' or admin's; default $COLDCHAIN_TOKEN)")
	out := fs.String("o", "", "write the report to `FILE` (default SHIPMENT.report.pdf; - for standard output)")
	in := fs.String("bundle", "", "report on this bundle `FILE` instead of fetching one")
	bundleOut := fs.String("bundle-out", "", "where to write the fetched bundle (`FILE`, default SHIPMENT.bundle.json)")
	rpc := fs.String("rpc", "", "the chain's JSON-RPC `URL` to print in the verify command")
	def := excursion.DefaultProfile()
	low := fs.Float64("low", def.Low.Limit, "the band's low limit, °C")
	high := fs.Float64("high", def.High.Limit, "the band's high limit, °C")
	profile := fs.String("profile", def.Name, "the band's `name`")
	timeout := fs.Duration("timeout", time.Minute, "give up fetching after this long")
	fs.Usage = func() { fmt.Fprint(stderr, reportHelp); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	var raw []byte
	var bundleFile string
	switch {
	case *in != "" && len(pos) == 0:
		if raw, err = os.ReadFile(*in); err != nil {
			return err
		}
		bundleFile = *in
	case *in == "" && len(pos) == 1:
		ship := pos[0]
		raw, err = apiGet(*api, "/v1/shipments/"+url.PathEscape(ship)+"/proof", nil, *token, *timeout, "fetch proof")
		if err != nil {
			return err
		}
		bundleFile = *bundleOut
		if bundleFile == "" {
			bundleFile = ship + ".bundle.json"
		}
		if err := os.WriteFile(bundleFile, raw, 0o644); err != nil {
			return err
		}
	default:
		fs.Usage()
		return fmt.Errorf("%w: report takes one SHIPMENT, or --bundle FILE", errUsage)
	}
	if *low >= *high {
		return fmt.Errorf("%w: --low %.1f must be below --high %.1f", errUsage, *low, *high)
	}
	var pdf bytes.Buffer
	o := report.Options{Low: *low, High: *high, Profile: *profile, BundleFile: filepath.Base(bundleFile), RPC: *rpc,
		Generated: time.Now().UTC().Truncate(time.Second), Custody: custody.DefaultConfig()}
	if err := report.Render(&pdf, raw, o); err != nil {
		return fmt.Errorf("%s: %w", bundleFile, err)
	}
	if *out == "-" {
		_, err := stdout.Write(pdf.Bytes())
		return err
	}
	if *out == "" {
		var head struct{ Shipment string }
		if err := json.Unmarshal(raw, &head); err != nil || head.Shipment == "" {
			return errors.New("the bundle names no shipment: give -o FILE")
		}
		*out = head.Shipment + ".report.pdf"
	}
	if err := os.WriteFile(*out, pdf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s (%d bytes) from %s\n", *out, pdf.Len(), bundleFile)
	return nil
}
