package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/anchor/evm"
	"github.com/coldchain/coldchain/auth"
	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/pki"
)

const proofHelp = `Usage: coldchain proof SHIPMENT [--api URL] [-o FILE] [--record ID [--compact]] [--since SIZE]

Fetches the proof bundle of a shipment from a gateway and writes it to FILE
(standard output for -). The bundle holds the shipment's records in
canonical form, its log's size and root, its entry in an anchored epoch and
the anchor transaction: check it with coldchain verify (docs/PROOFS.md).

--record discloses one record (a reading's "device:seq" or a handover id)
and none of the others; --since adds a proof that the log at an earlier
anchored size is a prefix of this one.

--compact (with --record and -o FILE) writes the record's compact proof
instead, about 1 KiB in binary, to FILE, and the record's canonical bytes to
FILE.record: the two files are what coldchain verify FILE needs.

Flags:
`

// apiGet fetches path?q from the gateway's API at base with token and
// returns the body of a 200; what names the step in errors.
func apiGet(base, path string, q url.Values, token string, timeout time.Duration, what string) ([]byte, error) {
	u := strings.TrimRight(base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, timeout)
	defer cancelT()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("%s: %s: %s (pass --token or set COLDCHAIN_TOKEN)", what, resp.Status, strings.TrimSpace(string(body)))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s: %s", what, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// proofCmd runs `coldchain proof`.
func proofCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("proof", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "http://127.0.0.1:8080", "the gateway's HTTP API `URL`")
	out := fs.String("o", "-", "write the bundle to `FILE` (- for standard output)")
	rec := fs.String("record", "", "disclose only the record with this `ID`")
	since := fs.Uint64("since", 0, "add a consistency proof from this earlier anchored `SIZE`")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	token := fs.String("token", os.Getenv("COLDCHAIN_TOKEN"), "bearer `token` for the API (a shipper's, customs' or admin's; default $COLDCHAIN_TOKEN)")
	compact := fs.Bool("compact", false, "write the record's compact proof (binary, about 1 KiB) to -o FILE and its bytes to FILE.record; needs --record")
	fs.Usage = func() { fmt.Fprint(stderr, proofHelp); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: proof takes one SHIPMENT", errUsage)
	}
	if *compact && (*rec == "" || *out == "-" || *since != 0) {
		return fmt.Errorf("%w: --compact proves one record: give --record ID and -o FILE, and no --since", errUsage)
	}
	q := url.Values{}
	if *rec != "" {
		q.Set("record", *rec)
	}
	if *since != 0 {
		q.Set("since", strconv.FormatUint(*since, 10))
	}
	body, err := apiGet(*api, "/v1/shipments/"+url.PathEscape(pos[0])+"/proof", q, *token, *timeout, "fetch proof")
	if err != nil {
		return err
	}
	b, err := bundle.Decode(body)
	if err != nil {
		return fmt.Errorf("the gateway answered something that is not a bundle: %w", err)
	}
	if *compact {
		proof, err := bundle.MarshalCompact(b)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, proof, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(*out+".record", []byte(b.Record.Data), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s (%d bytes, compact proof) and %s.record: record %d of %d of shipment %s, epoch %d, tx %s (%s)\n",
			*out, len(proof), *out, b.Record.Index, b.TreeSize, b.Shipment, b.Epoch.Number, b.Anchor.Tx, b.Anchor.State)
		return nil
	}
	if *out == "-" {
		_, err = stdout.Write(body)
		return err
	}
	if err := os.WriteFile(*out, body, 0o644); err != nil {
		return err
	}
	n := len(b.Records)
	if b.Record != nil {
		n = 1
	}
	fmt.Fprintf(stderr, "wrote %s: shipment %s, %d of %d records, epoch %d, tx %s (%s)\n",
		*out, b.Shipment, n, b.TreeSize, b.Epoch.Number, b.Anchor.Tx, b.Anchor.State)
	return nil
}

const verifyHelp = `Usage: coldchain verify BUNDLE [--record-data FILE] [--rpc URL [--rpc-ca FILE]]

Checks a proof bundle with nothing but the file: every record is canonical
and of the shipment, the records hash to the shipment root (or the one
record and its audit path do), the consistency proof if any, the shipment's
entry in the epoch tree, the epoch header's hash, the anchor's form. With
--rpc it also asks that Ethereum JSON-RPC endpoint whether the anchor
transaction put the epoch root in the contract.

BUNDLE may also be a compact proof (coldchain proof --compact): it holds
no record and no roots, so verify reads the record's canonical bytes from
--record-data (default BUNDLE.record), recomputes the roots, and prints the
epoch root the record leads to. Offline that says nothing about the chain:
pass --rpc, or look the epoch root up in the anchor transaction.

It prints a summary and exits 0 when everything holds; otherwise it names
the first failing check and exits 1.

Flags:
`

// verifyCmd runs `coldchain verify`.
func verifyCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rpc := fs.String("rpc", "", "also check the anchor on chain through this JSON-RPC `URL`")
	rpcCA := fs.String("rpc-ca", "", "PEM `FILE` of the CA an https:// --rpc endpoint's certificate chains to (default: the system roots)")
	timeout := fs.Duration("timeout", time.Minute, "give up on the chain after this long")
	recData := fs.String("record-data", "", "for a compact proof: `FILE` holding the record's canonical bytes (default BUNDLE.record)")
	fs.Usage = func() { fmt.Fprint(stderr, verifyHelp); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: verify takes one BUNDLE file", errUsage)
	}
	raw, err := os.ReadFile(pos[0])
	if err != nil {
		return err
	}
	var data []byte
	if bundle.IsCompact(raw) {
		if *recData == "" {
			*recData = pos[0] + ".record"
		}
		if data, err = os.ReadFile(*recData); err != nil {
			return fmt.Errorf("%s is a compact proof, which holds no record: %w (give the record's canonical bytes with --record-data FILE)", pos[0], err)
		}
	} else if *recData != "" {
		return fmt.Errorf("%w: --record-data is for a compact proof; %s is a bundle", errUsage, pos[0])
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()
	return verifyBundle(ctx, raw, data, *rpc, pki.ClientTLS{CA: *rpcCA}, stdout)
}

// verifyBundle checks a bundle (or a compact proof with its record's
// bytes, data) offline and, with rpc set, on chain, and prints the summary
// or the first failing check.
func verifyBundle(ctx context.Context, raw, data []byte, rpc string, tls pki.ClientTLS, stdout io.Writer) error {
	var b *bundle.Bundle
	var err error
	compact := bundle.IsCompact(raw)
	if compact {
		b, err = bundle.UnmarshalCompact(raw, data)
	} else {
		b, err = bundle.Decode(raw)
	}
	if err != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", err)
		return errVerify
	}
	s, err := bundle.Verify(b)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", err)
		return errVerify
	}
	writeSummary(stdout, s, b.DeviceKeys)
	if compact {
		fmt.Fprintf(stdout, "compact    %d bytes: the roots above are recomputed from the record, so only the chain can confirm them\n", len(raw))
	} else {
		writeCalibrations(stdout, s)
	}
	if rpc == "" {
		fmt.Fprintln(stdout, "on chain   not checked: pass --rpc URL to check the anchor transaction")
		fmt.Fprintln(stdout, "OK (offline)")
		return nil
	}
	if err := bundle.CheckAnchor(ctx, b, onChain(rpc, tls)); err != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", err)
		return errVerify
	}
	fmt.Fprintf(stdout, "on chain   epoch root found in tx %s, block %d, through %s\n", b.Anchor.Tx, b.Anchor.Block, rpc)
	fmt.Fprintln(stdout, "OK")
	return nil
}

// errVerify marks a bundle that failed verification; the failing check is
// already printed.
var errVerify = errors.New("verification failed")

// onChain returns the on-chain checker over rpcURL: the chain id, the
// transaction in the stated block of the canonical chain, its Anchored
// log, and an eth_call of the contract (evm.VerifyAnchor).
func onChain(rpcURL string, tls pki.ClientTLS) bundle.AnchorChecker {
	return bundle.AnchorCheckerFunc(func(ctx context.Context, a bundle.Anchor, root merkle.Hash) error {
		return evm.VerifyAnchorTLS(ctx, rpcURL, tls, anchor.Receipt{
			ChainID: a.ChainID, Contract: a.Contract, TxHash: a.Tx, Block: a.Block, BlockTime: a.BlockTime,
		}, root)
	})
}

func writeSummary(w io.Writer, s bundle.Summary, keys []bundle.DeviceKey) {
	kinds := make([]string, 0, len(s.Kinds))
	for k, n := range s.Kinds {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(kinds)
	if s.Selective {
		fmt.Fprintf(w, "shipment   %s: record %d of %d disclosed (%s), the others withheld\n", s.Shipment, s.Index, s.TreeSize, strings.Join(kinds, ", "))
		fmt.Fprintf(w, "root       %s: the record and its audit path hash to it\n", s.Root)
	} else {
		fmt.Fprintf(w, "shipment   %s: %d records (%s), in log order\n", s.Shipment, s.TreeSize, strings.Join(kinds, ", "))
		fmt.Fprintf(w, "root       %s: recomputed from the records\n", s.Root)
	}
	if !s.First.IsZero() {
		fmt.Fprintf(w, "time       %s … %s", s.First.Format(time.RFC3339), s.Last.Format(time.RFC3339))
		if s.Kinds["reading"] > 0 {
			fmt.Fprintf(w, ", temperatures %g … %g °C", s.MinTempC, s.MaxTempC)
		}
		fmt.Fprintln(w)
	}
	if n := s.Kinds["reading"]; n > 0 {
		writeSigned(w, s, n, keys)
	}
	if s.FromSize > 0 {
		fmt.Fprintf(w, "grew       from %d records: the earlier log is a prefix of this one\n", s.FromSize)
	}
	fmt.Fprintf(w, "epoch      %d, root %s: entry %d of %d, chained to %s\n", s.Epoch, s.EpochRoot, s.EpochIndex, s.Entries, s.Prev)
	a := s.Anchor
	fmt.Fprintf(w, "anchor     chain %d, contract %s, tx %s, block %d (%s), %s when the bundle was written\n",
		a.ChainID, a.Contract, a.Tx, a.Block, time.Unix(a.BlockTime, 0).UTC().Format(time.RFC3339), a.State)
}

// writeCalibrations lists the calibration records the readings were
// checked against, saying which are anchored (a device record in the log)
// and which only the bundle asserts, and names the readings taken out of
// calibration.
func writeCalibrations(w io.Writer, s bundle.Summary) {
	if len(s.Calibrations) == 0 {
		if s.Kinds["reading"] > 0 && s.Kinds["device"] == 0 {
			fmt.Fprintln(w, "calibrated no calibration records in the bundle: the devices are not in the gateway's device registry")
		}
		if s.Kinds["device"] > 0 {
			fmt.Fprintln(w, "calibrated none: the devices' anchored registry records hold no calibration")
		}
	}
	for _, c := range s.Calibrations {
		from := "not anchored: from the registry when the bundle was built"
		if c.Anchored {
			from = fmt.Sprintf("anchored: log record %d, registry revision %d", c.Record, c.Revision)
		}
		fmt.Fprintf(w, "calibrated %s (serial %s): %s, %s, against %s, ±%g °C, %s … %s, certificate SHA-256 %s (%s)\n",
			c.Device, c.Serial, c.Lab, c.Accreditation, c.Reference, c.UncertaintyC,
			c.CalibratedAt.UTC().Format(time.DateOnly), c.DueAt.UTC().Format(time.DateOnly), c.CertSHA256, from)
	}
	for _, d := range s.Differs {
		fmt.Fprintf(w, "NOTE       the bundle's calibration records of %s differ from its latest anchored device record; the anchored ones were used (the registry changed after it was logged, or the bundle was edited)\n", d)
	}
	devices := make([]string, 0, len(s.OutOfCalibration))
	for d := range s.OutOfCalibration {
		devices = append(devices, d)
	}
	sort.Strings(devices)
	for _, d := range devices {
		fmt.Fprintf(w, "OUT OF CALIBRATION %d readings of %s were taken outside every calibration window (first: %s); they are proven, but not calibrated evidence\n",
			s.OutOfCalibration[d], d, s.FirstOut[d])
	}
}

// writeSigned says what the readings' device signatures prove.
func writeSigned(w io.Writer, s bundle.Summary, readings int, keys []bundle.DeviceKey) {
	if s.Signed == 0 && s.NoKey == 0 {
		fmt.Fprintf(w, "signed     none of the %d readings is device-signed: they are proven from the gateway on, not from the sensor\n", readings)
		return
	}
	if s.Signed > 0 {
		var who []string
		for _, k := range keys {
			who = append(who, fmt.Sprintf("%s key %s", k.Device, auth.Fingerprint(k.PublicKey)))
		}
		fmt.Fprintf(w, "signed     %d of %d readings verified as signed by their device (Ed25519; %s)", s.Signed, readings, strings.Join(who, ", "))
		if s.Unsigned > 0 {
			fmt.Fprintf(w, "; %d unsigned", s.Unsigned)
		}
		fmt.Fprintln(w)
	}
	if s.NoKey > 0 {
		fmt.Fprintf(w, "signed     %d readings carry a signature but the bundle gives no key for their device: not checked\n", s.NoKey)
	}
}

// parseInterleaved parses flags that may come before or after the
// positional arguments, and returns the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
