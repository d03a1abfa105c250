package bundle

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// CompactMagic starts every compact proof.
const CompactMagic = "ccp1"

// A compact proof is a one-record bundle in binary, without what a
// verifier recomputes or already holds: the record itself (its holder has
// its canonical bytes), the shipment root, the entries root and the epoch
// root (each follows from the record and the audit paths), and the device
// keys and calibrations (not covered by the anchor). What is left is the
// record's place in its shipment log, the two audit paths, the epoch's
// number, size and predecessor, and where its root was anchored: about
// 1 KiB for a month of minute readings in an epoch of 1,000 shipments,
// where the JSON bundle is about 3 KB (docs/PROOFS.md).
//
// Layout (integers are unsigned varints, encoding/binary):
//
//	"ccp1"
//	len(shipment) shipment
//	tree_size  index  n  n×32 audit path
//	epoch  entries  epoch_index  prev(32)  m  m×32 epoch path
//	chain_id  contract(20)  tx(32)  block  block_time  state (1 included, 2 final)
//
// The encoding is canonical: UnmarshalCompact refuses any other bytes for
// the same proof (a longer varint, trailing bytes).

// MarshalCompact returns b, a bundle disclosing one record without a
// consistency proof, as a compact proof.
func MarshalCompact(b *Bundle) ([]byte, error) {
	switch {
	case b.Record == nil:
		return nil, fmt.Errorf("%w: a compact proof discloses one record: ask for the bundle of one record (proof?record=ID)", ErrMalformed)
	case b.Consistency != nil:
		return nil, fmt.Errorf("%w: a compact proof carries no consistency proof", ErrMalformed)
	case len(b.Record.Path) > 64 || len(b.Epoch.Path) > 64:
		return nil, fmt.Errorf("%w: an audit path of more than 64 hashes", ErrMalformed)
	case b.Anchor.BlockTime < 0:
		return nil, fmt.Errorf("%w: block_time %d before 1970", ErrAnchor, b.Anchor.BlockTime)
	}
	contract, err := hexBytes(b.Anchor.Contract, 20)
	if err != nil {
		return nil, fmt.Errorf("%w: contract: %w", ErrAnchor, err)
	}
	tx, err := hexBytes(b.Anchor.Tx, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: tx: %w", ErrAnchor, err)
	}
	var state byte
	switch b.Anchor.State {
	case "included":
		state = 1
	case "final":
		state = 2
	default:
		return nil, fmt.Errorf("%w: state %q is neither included nor final", ErrAnchor, b.Anchor.State)
	}
	out := make([]byte, 0, 128+len(b.Shipment)+32*(len(b.Record.Path)+len(b.Epoch.Path)))
	out = append(out, CompactMagic...)
	out = binary.AppendUvarint(out, uint64(len(b.Shipment)))
	out = append(out, b.Shipment...)
	out = binary.AppendUvarint(out, b.TreeSize)
	out = binary.AppendUvarint(out, b.Record.Index)
	out = appendPath(out, b.Record.Path)
	out = binary.AppendUvarint(out, b.Epoch.Number)
	out = binary.AppendUvarint(out, b.Epoch.Entries)
	out = binary.AppendUvarint(out, b.Epoch.Index)
	out = append(out, b.Epoch.Prev[:]...)
	out = appendPath(out, b.Epoch.Path)
	out = binary.AppendUvarint(out, b.Anchor.ChainID)
	out = append(out, contract...)
	out = append(out, tx...)
	out = binary.AppendUvarint(out, b.Anchor.Block)
	out = binary.AppendUvarint(out, uint64(b.Anchor.BlockTime))
	return append(out, state), nil
}

func appendPath(out []byte, path []merkle.Hash) []byte {
	out = append(out, byte(len(path)))
	for _, h := range path {
		out = append(out, h[:]...)
	}
	return out
}

func hexBytes(s string, n int) ([]byte, error) {
	if !isHex(s, n) {
		return nil, fmt.Errorf("%q is not 0x and %d hex digits", s, 2*n)
	}
	return hex.DecodeString(s[2:])
}

// UnmarshalCompact rebuilds the one-record bundle that proof, a compact
// proof, makes for data, the record's canonical bytes: the shipment root,
// entries root and epoch root are recomputed from them. Check the result
// with Verify and CheckAnchor like any bundle: offline, a compact proof
// only tells which epoch root the record leads to, so the anchor check is
// what proves it. Malformed or non-canonical input is an error wrapping
// ErrMalformed.
func UnmarshalCompact(proof, data []byte) (*Bundle, error) {
	d := compactReader{b: proof}
	if !bytes.HasPrefix(proof, []byte(CompactMagic)) {
		return nil, fmt.Errorf("%w: not a compact proof (it starts %q, not %q)", ErrMalformed, prefix(proof), CompactMagic)
	}
	d.b = d.b[len(CompactMagic):]
	b := &Bundle{Format: Format, Record: &Record{Data: string(data)}}
	if n := d.uvarint("shipment length"); n > 64 {
		d.fail("shipment length %d", n)
	} else {
		b.Shipment = string(d.take(int(n), "shipment"))
	}
	b.TreeSize = d.uvarint("tree_size")
	b.Record.Index = d.uvarint("index")
	b.Record.Path = d.path("record path")
	b.Epoch.Number = d.uvarint("epoch")
	b.Epoch.Entries = d.uvarint("entries")
	b.Epoch.Index = d.uvarint("epoch index")
	copy(b.Epoch.Prev[:], d.take(32, "prev"))
	b.Epoch.Path = d.path("epoch path")
	b.Anchor.ChainID = d.uvarint("chain_id")
	b.Anchor.Contract = "0x" + hex.EncodeToString(d.take(20, "contract"))
	b.Anchor.Tx = "0x" + hex.EncodeToString(d.take(32, "tx"))
	b.Anchor.Block = d.uvarint("block")
	if t := d.uvarint("block_time"); t > 1<<62 {
		d.fail("block_time %d", t)
	} else {
		b.Anchor.BlockTime = int64(t)
	}
	switch s := d.take(1, "state"); {
	case d.err != nil:
	case s[0] == 1:
		b.Anchor.State = "included"
	case s[0] == 2:
		b.Anchor.State = "final"
	default:
		d.fail("state %d", s[0])
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the proof", len(d.b))
	}
	if d.err != nil {
		return nil, d.err
	}
	if !record.ValidID(b.Shipment) {
		return nil, fmt.Errorf("%w: shipment %q is not a valid id", ErrMalformed, b.Shipment)
	}
	if again, err := MarshalCompact(b); err != nil || !bytes.Equal(again, proof) {
		return nil, fmt.Errorf("%w: not the canonical encoding of the proof it holds", ErrMalformed)
	}
	var err error
	if b.Root, err = merkle.RootFromInclusion(merkle.LeafHash(data), b.Record.Index, b.TreeSize, b.Record.Path); err != nil {
		return nil, fmt.Errorf("%w: record %d of %d: %w", ErrShipmentRoot, b.Record.Index, b.TreeSize, err)
	}
	leaf := merkle.LeafHash(EntryBytes(b.Shipment, b.TreeSize, b.Root))
	if b.Epoch.EntriesRoot, err = merkle.RootFromInclusion(leaf, b.Epoch.Index, b.Epoch.Entries, b.Epoch.Path); err != nil {
		return nil, fmt.Errorf("%w: entry %d of %d: %w", ErrEpochEntry, b.Epoch.Index, b.Epoch.Entries, err)
	}
	b.Epoch.Root = EpochRoot(b.Epoch.Number, b.Epoch.Prev, b.Epoch.Entries, b.Epoch.EntriesRoot)
	return b, nil
}

// IsCompact reports whether data starts like a compact proof.
func IsCompact(data []byte) bool { return bytes.HasPrefix(data, []byte(CompactMagic)) }

func prefix(b []byte) string {
	return strings.ToValidUTF8(string(b[:min(len(b), 4)]), "?")
}

type compactReader struct {
	b   []byte
	err error
}

func (d *compactReader) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: compact proof: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (d *compactReader) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("%s: not a varint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *compactReader) take(n int, what string) []byte {
	if d.err != nil {
		return make([]byte, n)
	}
	if len(d.b) < n {
		d.fail("%s: %d bytes, %d left", what, n, len(d.b))
		return make([]byte, n)
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *compactReader) path(what string) []merkle.Hash {
	n := int(d.take(1, what)[0])
	if d.err == nil && n > 64 {
		d.fail("%s of %d hashes", what, n)
	}
	if d.err != nil {
		return nil
	}
	out := make([]merkle.Hash, n)
	for i := range out {
		copy(out[i][:], d.take(32, what))
	}
	return out
}
