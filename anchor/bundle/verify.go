package bundle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// The checks Verify and CheckAnchor make, in the order they make them. Each
// failure is returned wrapped with a sentence naming the record, size or
// hash at fault; match the check with errors.Is.
var (
	// ErrMalformed means the file is not a bundle: not JSON, an unknown or
	// missing member, trailing data, or members that contradict each other.
	ErrMalformed = errors.New("malformed bundle")
	// ErrFormat means the bundle is of another format than Format.
	ErrFormat = errors.New("format")
	// ErrRecord means a record is not the canonical encoding of a record of
	// this shipment.
	ErrRecord = errors.New("record")
	// ErrSignature means a signed reading's sig does not verify with any
	// key the bundle gives for its device: it was altered after its device
	// signed it, or not signed by that device.
	ErrSignature = errors.New("signature")
	// ErrTreeSize means a full bundle holds more or fewer records than its
	// tree size.
	ErrTreeSize = errors.New("tree size")
	// ErrShipmentRoot means the records (or the disclosed record and its
	// audit path) do not hash to the shipment root.
	ErrShipmentRoot = errors.New("shipment root")
	// ErrConsistency means the consistency proof does not show that the
	// earlier size of the log is a prefix of this one.
	ErrConsistency = errors.New("consistency")
	// ErrEpochEntry means the shipment's (id, tree size, root) entry and
	// its audit path do not hash to the epoch tree's root.
	ErrEpochEntry = errors.New("epoch entry")
	// ErrEpochRoot means the epoch header does not hash to the epoch root.
	ErrEpochRoot = errors.New("epoch root")
	// ErrAnchor means the anchor is malformed, or the chain does not hold
	// the epoch root where the bundle says.
	ErrAnchor = errors.New("anchor")
)

// Decode reads a bundle strictly: one JSON object with no unknown member
// and nothing after it. It checks the shape, not the proofs: see Verify.
func Decode(data []byte) (*Bundle, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the bundle", ErrMalformed)
	}
	return &b, nil
}

// Encode writes b as indented JSON with the records' characters unescaped
// (no \u003c for '<'), followed by a newline.
func Encode(w io.Writer, b *Bundle) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	return enc.Encode(b)
}

// Summary is what a verified bundle proves, for a person to read.
type Summary struct {
	Shipment string
	TreeSize uint64
	Root     merkle.Hash
	// Selective is true for a one-record bundle; Index is that record.
	Selective bool
	Index     uint64
	// Kinds counts the disclosed records by their "type" member.
	Kinds map[string]int
	// First and Last bound the disclosed records' ts; zero if none has one.
	First, Last time.Time
	// MinTempC and MaxTempC bound the disclosed readings' temp_c, °C;
	// meaningful only when Kinds["reading"] > 0.
	MinTempC, MaxTempC float64
	// FromSize is the earlier size a consistency proof covers, or 0.
	FromSize uint64
	Epoch    uint64
	Prev     merkle.Hash
	// Entries is the size of the epoch tree and EpochIndex the shipment's
	// leaf in it.
	Entries    uint64
	EpochIndex uint64
	// EpochRoot is the value anchored on chain.
	EpochRoot merkle.Hash
	Anchor    Anchor
	// Signed counts the disclosed readings whose sig verified with their
	// device's key in the bundle; Unsigned those without sig; NoKey those
	// with a sig but no key for their device in the bundle, which nothing
	// here can check.
	Signed, Unsigned, NoKey int
	// OutOfCalibration counts, per device with calibration records in the
	// bundle, the disclosed readings taken outside every calibration
	// window; FirstOut names the first of each (device:seq).
	OutOfCalibration map[string]int
	FirstOut         map[string]string
	// Calibrations are the calibration records the check above used, by
	// device: those of the device's latest device record in the log when
	// it has one (anchored with the readings), else the bundle's
	// calibrations (from the registry when the bundle was built, not
	// anchored).
	Calibrations []CheckedCalibration
	// Differs lists the devices whose calibrations in the bundle differ
	// from their latest anchored device record: the registry changed
	// after that record was logged, or the bundle was altered.
	Differs []string

	keys map[string][]ed25519.PublicKey
	cals map[string][]Calibration
}

// CheckedCalibration is a calibration record and where it comes from.
type CheckedCalibration struct {
	Calibration
	// Anchored is set when it comes from a device record in the log:
	// Record is then that record's index and Revision its registry
	// revision.
	Anchored bool
	Record   uint64
	Revision uint64
}

// Verify checks everything a bundle proves without the outside world: each
// record is canonical and of this shipment; the records hash to the
// shipment root (every record, or the one disclosed with its audit path);
// the consistency proof, if any; the shipment's entry is in the epoch tree;
// the epoch header hashes to the epoch root; the anchor is well formed. It
// returns the first failing check, wrapping one of the Err* sentinels, or a
// summary of what holds. It does not tell whether the chain holds the epoch
// root: CheckAnchor does.
func Verify(b *Bundle) (Summary, error) {
	s := Summary{Shipment: b.Shipment, TreeSize: b.TreeSize, Root: b.Root, Kinds: map[string]int{},
		Epoch: b.Epoch.Number, Prev: b.Epoch.Prev, Entries: b.Epoch.Entries, EpochIndex: b.Epoch.Index, EpochRoot: b.Epoch.Root, Anchor: b.Anchor}
	if b.Format != Format {
		return s, fmt.Errorf("%w: %q, this verifier reads %q", ErrFormat, b.Format, Format)
	}
	if !record.ValidID(b.Shipment) {
		return s, fmt.Errorf("%w: shipment %q is not a valid id", ErrMalformed, b.Shipment)
	}
	if b.TreeSize == 0 {
		return s, fmt.Errorf("%w: tree_size is 0; an empty log is never anchored", ErrMalformed)
	}
	if (b.Records == nil) == (b.Record == nil) {
		return s, fmt.Errorf("%w: a bundle holds either records (all of them) or record (one), not both or neither", ErrMalformed)
	}
	keys, err := deviceKeys(b.DeviceKeys)
	if err != nil {
		return s, err
	}
	s.keys = keys
	if s.cals, err = calibrations(b.Calibrations, &s); err != nil {
		return s, err
	}
	if b.Record != nil {
		err = verifyOne(b, &s)
	} else {
		err = verifyAll(b, &s)
	}
	if err != nil {
		return s, err
	}
	if err := verifyEpoch(b); err != nil {
		return s, err
	}
	if err := checkAnchorShape(b.Anchor); err != nil {
		return s, err
	}
	return s, nil
}

func verifyAll(b *Bundle, s *Summary) error {
	if err := useDeviceRecords(b, s); err != nil {
		return err
	}
	leaves := make(merkle.LeafHashes, 0, len(b.Records))
	var tree merkle.Tree
	for i, data := range b.Records {
		if err := checkRecord(s, uint64(i), []byte(data), b.Shipment); err != nil {
			return err
		}
		h := tree.AppendData([]byte(data))
		if b.Consistency != nil {
			leaves = append(leaves, h)
		}
	}
	if uint64(len(b.Records)) != b.TreeSize {
		return fmt.Errorf("%w: the bundle holds %d records but its tree_size is %d", ErrTreeSize, len(b.Records), b.TreeSize)
	}
	if got := tree.Root(); got != b.Root {
		return fmt.Errorf("%w: the %d records hash to %s, the bundle says %s", ErrShipmentRoot, len(b.Records), got, b.Root)
	}
	if c := b.Consistency; c != nil {
		if c.FromSize == 0 || c.FromSize > b.TreeSize {
			return fmt.Errorf("%w: from_size %d is not in 1…%d", ErrConsistency, c.FromSize, b.TreeSize)
		}
		if got, _ := merkle.RootAt(leaves, c.FromSize); got != c.FromRoot {
			return fmt.Errorf("%w: the first %d records hash to %s, the bundle says from_root %s", ErrConsistency, c.FromSize, got, c.FromRoot)
		}
	}
	return verifyConsistency(b, s)
}

func verifyOne(b *Bundle, s *Summary) error {
	r := b.Record
	s.Selective, s.Index = true, r.Index
	if r.Index >= b.TreeSize {
		return fmt.Errorf("%w: record index %d is not below tree_size %d", ErrMalformed, r.Index, b.TreeSize)
	}
	if err := checkRecord(s, r.Index, []byte(r.Data), b.Shipment); err != nil {
		return err
	}
	if err := merkle.VerifyInclusion(merkle.LeafHash([]byte(r.Data)), r.Index, b.TreeSize, r.Path, b.Root); err != nil {
		return fmt.Errorf("%w: record %d and its audit path do not hash to %s (tree size %d): %w", ErrShipmentRoot, r.Index, b.Root, b.TreeSize, err)
	}
	return verifyConsistency(b, s)
}

func verifyConsistency(b *Bundle, s *Summary) error {
	c := b.Consistency
	if c == nil {
		return nil
	}
	if err := merkle.VerifyConsistency(c.FromSize, b.TreeSize, c.Path, c.FromRoot, b.Root); err != nil {
		return fmt.Errorf("%w: size %d (root %s) to size %d: %w", ErrConsistency, c.FromSize, c.FromRoot, b.TreeSize, err)
	}
	s.FromSize = c.FromSize
	return nil
}

func verifyEpoch(b *Bundle) error {
	e := b.Epoch
	if e.Number == 0 {
		return fmt.Errorf("%w: epoch number 0; epochs count from 1", ErrMalformed)
	}
	if e.Number == 1 && e.Prev != (merkle.Hash{}) {
		return fmt.Errorf("%w: epoch 1 chains to %s; the first epoch chains to 32 zero bytes", ErrEpochRoot, e.Prev)
	}
	leaf := merkle.LeafHash(EntryBytes(b.Shipment, b.TreeSize, b.Root))
	if err := merkle.VerifyInclusion(leaf, e.Index, e.Entries, e.Path, e.EntriesRoot); err != nil {
		return fmt.Errorf("%w: (%s, %d, %s) at index %d does not hash to entries_root %s of %d entries: %w",
			ErrEpochEntry, b.Shipment, b.TreeSize, b.Root, e.Index, e.EntriesRoot, e.Entries, err)
	}
	if got := EpochRoot(e.Number, e.Prev, e.Entries, e.EntriesRoot); got != e.Root {
		return fmt.Errorf("%w: the header of epoch %d hashes to %s, the bundle says %s", ErrEpochRoot, e.Number, got, e.Root)
	}
	return nil
}

func checkAnchorShape(a Anchor) error {
	switch {
	case a.ChainID == 0:
		return fmt.Errorf("%w: chain_id is 0", ErrAnchor)
	case !isHex(a.Contract, 20):
		return fmt.Errorf("%w: contract %q is not a 0x-prefixed 20-byte hex address", ErrAnchor, a.Contract)
	case !isHex(a.Tx, 32):
		return fmt.Errorf("%w: tx %q is not a 0x-prefixed 32-byte hex hash", ErrAnchor, a.Tx)
	case a.Block == 0:
		return fmt.Errorf("%w: block is 0; an anchor is in a block", ErrAnchor)
	}
	return nil
}

func isHex(s string, n int) bool {
	if len(s) != 2+2*n || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return false
	}
	for _, c := range []byte(s[2:]) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// recordHead is what every record kind has, whatever else it holds.
type recordHead struct {
	Type     string `json:"type"`
	Shipment string `json:"shipment"`
	V        int    `json:"v"`
}

// checkRecord checks that data is a record of shipment: readings and
// handovers must be exactly their canonical encoding (docs/RECORDS.md);
// a record of another type (alert events, later) must be a JSON object
// with type, shipment and v, so new kinds join without a new format.
func checkRecord(s *Summary, i uint64, data []byte, shipment string) error {
	var h recordHead
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("%w %d: not a JSON object: %w", ErrRecord, i, err)
	}
	if h.Shipment != shipment {
		return fmt.Errorf("%w %d: of shipment %q, the bundle is of %q", ErrRecord, i, h.Shipment, shipment)
	}
	if h.V != record.Version || h.Type == "" {
		return fmt.Errorf("%w %d: type %q version %d is not a record", ErrRecord, i, h.Type, h.V)
	}
	var (
		canonical []byte
		ts        time.Time
	)
	switch h.Type {
	case "reading":
		r, err := record.ParseReading(data)
		if err != nil {
			return fmt.Errorf("%w %d: %w", ErrRecord, i, err)
		}
		canonical, ts = r.AppendCanonical(nil), r.Time
		if s.Kinds["reading"] == 0 || r.TempC < s.MinTempC {
			s.MinTempC = r.TempC
		}
		if s.Kinds["reading"] == 0 || r.TempC > s.MaxTempC {
			s.MaxTempC = r.TempC
		}
		if err := s.checkSig(i, &r); err != nil {
			return err
		}
		s.checkCalibration(&r)
	case "handover":
		hv, err := record.ParseHandover(data)
		if err != nil {
			return fmt.Errorf("%w %d: %w", ErrRecord, i, err)
		}
		canonical, ts = hv.AppendCanonical(nil), hv.Time
	case "device":
		d, err := record.ParseDeviceRecord(data)
		if err != nil {
			return fmt.Errorf("%w %d: %w", ErrRecord, i, err)
		}
		canonical = d.AppendCanonical(nil)
	}
	if canonical != nil && !bytes.Equal(canonical, data) {
		return fmt.Errorf("%w %d: not in canonical form; canonical is %s", ErrRecord, i, canonical)
	}
	s.Kinds[h.Type]++
	if !ts.IsZero() {
		if s.First.IsZero() || ts.Before(s.First) {
			s.First = ts
		}
		if ts.After(s.Last) {
			s.Last = ts
		}
	}
	return nil
}

// deviceKeys indexes a bundle's device keys, refusing malformed ones.
func deviceKeys(list []DeviceKey) (map[string][]ed25519.PublicKey, error) {
	m := make(map[string][]ed25519.PublicKey, len(list))
	for i, k := range list {
		if !record.ValidID(k.Device) || len(k.PublicKey) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: device_keys[%d]: want a valid device id and a %d-byte Ed25519 public key", ErrMalformed, i, ed25519.PublicKeySize)
		}
		m[k.Device] = append(m[k.Device], k.PublicKey)
	}
	return m, nil
}

// checkSig checks a disclosed reading's signature, if it has one.
func (s *Summary) checkSig(i uint64, r *record.Reading) error {
	if r.Sig == nil {
		s.Unsigned++
		return nil
	}
	keys := s.keys[r.Device]
	if len(keys) == 0 {
		s.NoKey++
		return nil
	}
	for _, k := range keys {
		if r.VerifySig(k) {
			s.Signed++
			return nil
		}
	}
	return fmt.Errorf("%w: record %d (reading %s): its sig does not verify with any of the %d key(s) the bundle gives for device %s: the reading is not what its device signed", ErrSignature, i, r.ID(), len(keys), r.Device)
}

// AnchorChecker checks on chain that the epoch root was anchored where a
// bundle says. anchor/evm provides one over JSON-RPC.
type AnchorChecker interface {
	CheckAnchor(ctx context.Context, a Anchor, epochRoot merkle.Hash) error
}

// AnchorCheckerFunc adapts a function to AnchorChecker.
type AnchorCheckerFunc func(ctx context.Context, a Anchor, epochRoot merkle.Hash) error

// CheckAnchor calls f.
func (f AnchorCheckerFunc) CheckAnchor(ctx context.Context, a Anchor, epochRoot merkle.Hash) error {
	return f(ctx, a, epochRoot)
}

// CheckAnchor asks c whether the chain holds b's epoch root where b's anchor
// says, wrapping a refusal in ErrAnchor. Call it after Verify: it checks the
// epoch root, not the records.
func CheckAnchor(ctx context.Context, b *Bundle, c AnchorChecker) error {
	if err := c.CheckAnchor(ctx, b.Anchor, b.Epoch.Root); err != nil {
		return fmt.Errorf("%w: on chain %d: %w", ErrAnchor, b.Anchor.ChainID, err)
	}
	return nil
}

// calibrations indexes a bundle's calibration records by device, refusing
// malformed ones, and lists them as not anchored.
func calibrations(list []Calibration, s *Summary) (map[string][]Calibration, error) {
	m := make(map[string][]Calibration, len(list))
	for i, c := range list {
		if !record.ValidID(c.Device) || !c.DueAt.After(c.CalibratedAt) {
			return nil, fmt.Errorf("%w: calibrations[%d]: want a valid device id and due_at after calibrated_at", ErrMalformed, i)
		}
		m[c.Device] = append(m[c.Device], c)
		s.Calibrations = append(s.Calibrations, CheckedCalibration{Calibration: c})
	}
	return m, nil
}

// useDeviceRecords makes the calibrations of each device's latest device
// record in the log (the highest registry revision) the ones readings are
// checked against, in place of the bundle's, and notes the devices whose
// bundle calibrations say otherwise. A malformed device record is left for
// checkRecord to refuse.
func useDeviceRecords(b *Bundle, s *Summary) error {
	type latest struct {
		rec   record.DeviceRecord
		index uint64
	}
	last := map[string]latest{}
	for i, data := range b.Records {
		if !strings.Contains(data, `"type":"device"`) {
			continue
		}
		d, err := record.ParseDeviceRecord([]byte(data))
		if err != nil {
			continue
		}
		if have, ok := last[d.Device]; !ok || d.Revision > have.rec.Revision {
			last[d.Device] = latest{d, uint64(i)}
		}
	}
	if len(last) == 0 {
		return nil
	}
	var kept []CheckedCalibration
	for _, c := range s.Calibrations {
		if _, ok := last[c.Device]; !ok {
			kept = append(kept, c)
		}
	}
	for _, dev := range slices.Sorted(maps.Keys(last)) {
		l := last[dev]
		var anchored []Calibration
		for _, c := range l.rec.Calibrations {
			bc := Calibration{Device: dev, Serial: l.rec.Serial, Calibration: c}
			anchored = append(anchored, bc)
			kept = append(kept, CheckedCalibration{Calibration: bc, Anchored: true, Record: l.index, Revision: l.rec.Revision})
		}
		if !sameCalibrations(anchored, s.cals[dev]) {
			s.Differs = append(s.Differs, dev)
		}
		// A device record with no calibration still says the device is
		// registered and never calibrated: every reading is out.
		s.cals[dev] = anchored
		if s.cals[dev] == nil {
			s.cals[dev] = []Calibration{}
		}
	}
	s.Calibrations = kept
	return nil
}

func sameCalibrations(a, b []Calibration) bool {
	return slices.EqualFunc(a, b, func(x, y Calibration) bool {
		return x.Serial == y.Serial && x.Lab == y.Lab && x.Accreditation == y.Accreditation && x.Reference == y.Reference &&
			x.CertSHA256 == y.CertSHA256 && x.CalibratedAt.Equal(y.CalibratedAt) && x.DueAt.Equal(y.DueAt) && x.UncertaintyC == y.UncertaintyC
	})
}

// checkCalibration counts r when its device has calibration records and
// none holds at r's time.
func (s *Summary) checkCalibration(r *record.Reading) {
	cals, ok := s.cals[r.Device]
	if !ok {
		return
	}
	for _, c := range cals {
		if !r.Time.Before(c.CalibratedAt) && r.Time.Before(c.DueAt) {
			return
		}
	}
	if s.OutOfCalibration == nil {
		s.OutOfCalibration, s.FirstOut = map[string]int{}, map[string]string{}
	}
	if s.OutOfCalibration[r.Device] == 0 {
		s.FirstOut[r.Device] = r.ID()
	}
	s.OutOfCalibration[r.Device]++
}
