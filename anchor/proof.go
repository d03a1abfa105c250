package anchor

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/coldchain/coldchain/anchor/bundle"
	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// ProofOptions select what a bundle discloses.
type ProofOptions struct {
	// Record, if set, is the id of the one record to disclose ("device:seq"
	// for a reading, the handover id); the others stay undisclosed.
	Record string
	// Since, if not 0, adds a consistency proof from that earlier anchored
	// size of the shipment's log.
	Since uint64
}

// AnchorInfo is one epoch that holds a shipment.
type AnchorInfo struct {
	Epoch     uint64      `json:"epoch"`
	Size      uint64      `json:"size"`
	Root      merkle.Hash `json:"root"`
	EpochRoot merkle.Hash `json:"epoch_root"`
	State     string      `json:"state"`
	ChainID   uint64      `json:"chain_id,omitempty"`
	Contract  string      `json:"contract,omitempty"`
	Tx        string      `json:"tx,omitempty"`
	Block     uint64      `json:"block,omitempty"`
	BlockTime int64       `json:"block_time,omitempty"`
}

// Anchors lists the epochs that hold shipment, oldest first, with where
// each stands on the chain, and the log's current size. It returns
// ErrUnknownShipment for a shipment never logged.
func (s *Service) Anchors(shipment string) (size uint64, list []AnchorInfo, err error) {
	size, ok := s.size(shipment)
	if !ok {
		return 0, nil, fmt.Errorf("%w: %q", ErrUnknownShipment, shipment)
	}
	list = []AnchorInfo{}
	err = s.eachAnchor(shipment, false, func(a anchorRef, st storedStatus) bool {
		r := st.Receipt
		list = append(list, AnchorInfo{Epoch: a.epoch, Size: a.size, Root: a.root, EpochRoot: a.epochRoot,
			State: r.State.String(), ChainID: r.ChainID, Contract: r.Contract, Tx: r.TxHash, Block: r.Block, BlockTime: r.BlockTime})
		return true
	})
	return size, list, err
}

func (s *Service) size(shipment string) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.ships[shipment]
	if l == nil {
		return 0, false
	}
	return l.tree.Size(), true
}

// eachAnchor calls fn with the shipment's entries and their epochs' status,
// in epoch order or in reverse, until fn returns false.
func (s *Service) eachAnchor(shipment string, reverse bool, fn func(anchorRef, storedStatus) bool) error {
	p := anchorPrefix(shipment)
	return each(s.db, p, reverse, func(k, v []byte) (bool, error) {
		a, err := decodeAnchorRef(binary.BigEndian.Uint64(k[len(p):]), v)
		if err != nil {
			return false, err
		}
		var st storedStatus
		if _, err := getJSON(s.db, statusKey(a.epoch), &st); err != nil {
			return false, err
		}
		return fn(a, st), nil
	})
}

// Proof returns the proof bundle of shipment as of the latest epoch that
// holds it and is in a block (included or final). It returns
// ErrUnknownShipment, ErrUnknownRecord, ErrNotAnchored (nothing of the
// shipment, or not the record, is in such an epoch yet) or
// ErrNotAnchoredSize (opts.Since is not an anchored size).
func (s *Service) Proof(shipment string, opts ProofOptions) (*bundle.Bundle, error) {
	if _, ok := s.size(shipment); !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownShipment, shipment)
	}
	var (
		ref   anchorRef
		st    storedStatus
		found bool
		since *anchorRef
	)
	err := s.eachAnchor(shipment, true, func(a anchorRef, sa storedStatus) bool {
		if !found && sa.Receipt.State >= StateIncluded {
			ref, st, found = a, sa, true
		}
		if found && opts.Since != 0 && a.size == opts.Since {
			since = &a
		}
		return !found || (opts.Since != 0 && since == nil && a.size > opts.Since)
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("%w: shipment %q is in no epoch that is in a block", ErrNotAnchored, shipment)
	}
	if opts.Since != 0 && since == nil {
		return nil, fmt.Errorf("%w: %d is not a size at which shipment %q was anchored (see its anchors)", ErrNotAnchoredSize, opts.Since, shipment)
	}

	se, ok, err := s.storedEpoch(ref.epoch)
	if err != nil || !ok {
		return nil, fmt.Errorf("epoch %d: missing (%v)", ref.epoch, err)
	}
	e, err := se.epoch()
	if err != nil {
		return nil, err
	}
	epath, err := e.Path(int(ref.index))
	if err != nil {
		return nil, err
	}
	r := st.Receipt
	b := &bundle.Bundle{
		Format: bundle.Format, Shipment: shipment, TreeSize: ref.size, Root: ref.root,
		Epoch: bundle.Epoch{Number: e.Number, Prev: e.Prev, Entries: uint64(len(e.Entries)), EntriesRoot: e.EntriesRoot,
			Index: ref.index, Path: nonNil(epath), Root: e.Root},
		Anchor: bundle.Anchor{ChainID: r.ChainID, Contract: r.Contract, Tx: r.TxHash, Block: r.Block, BlockTime: r.BlockTime, State: r.State.String()},
	}

	var index uint64
	if opts.Record != "" {
		v, ok, err := get(s.db, idKey(shipment, opts.Record))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: %q in shipment %q", ErrUnknownRecord, opts.Record, shipment)
		}
		if index = beUint(v); index >= ref.size {
			return nil, fmt.Errorf("%w: record %q is at %d, the latest anchored size of %q is %d", ErrNotAnchored, opts.Record, index, shipment, ref.size)
		}
	}
	leaves := make(merkle.LeafHashes, 0, ref.size)
	var records []string
	var disclosed []byte
	err = each(s.db, leafPrefix(shipment), false, func(k, v []byte) (bool, error) {
		if uint64(len(leaves)) == ref.size {
			return false, nil
		}
		// Only the hash is decoded for a leaf that is not disclosed.
		if opts.Record == "" || uint64(len(leaves)) == index {
			l, err := decodeLeaf(v)
			if err != nil {
				return false, err
			}
			if opts.Record == "" {
				records = append(records, string(l.data))
			} else {
				disclosed = l.data
			}
		}
		h, err := merkle.ParseHash(v[:min(len(v), merkle.HashSize)])
		if err != nil {
			return false, err
		}
		leaves = append(leaves, h)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	if uint64(len(leaves)) != ref.size {
		return nil, fmt.Errorf("shipment %q: %d leaves stored, epoch %d says %d", shipment, len(leaves), ref.epoch, ref.size)
	}
	// The stored leaves must still hash to the anchored root; a bundle that
	// cannot verify is never served.
	if got, _ := merkle.RootAt(leaves, ref.size); got != ref.root {
		return nil, fmt.Errorf("shipment %q: stored leaves hash to %s, epoch %d anchored %s", shipment, got, ref.epoch, ref.root)
	}
	if opts.Record == "" {
		b.Records = records
		b.DeviceKeys = s.deviceKeys(records...)
		b.Calibrations = s.calibrations(records...)
	} else {
		path, err := merkle.InclusionProof(leaves, index, ref.size)
		if err != nil {
			return nil, err
		}
		b.Record = &bundle.Record{Index: index, Data: string(disclosed), Path: nonNil(path)}
		b.DeviceKeys = s.deviceKeys(string(disclosed))
		b.Calibrations = s.calibrations(string(disclosed))
	}
	if since != nil {
		path, err := merkle.ConsistencyProof(leaves, since.size, ref.size)
		if err != nil {
			return nil, err
		}
		b.Consistency = &bundle.Consistency{FromSize: since.size, FromRoot: since.root, Path: nonNil(path)}
	}
	return b, nil
}

// deviceKeys returns the signing keys of the devices of the signed
// readings among records, sorted by device.
func (s *Service) deviceKeys(records ...string) []bundle.DeviceKey {
	if s.keys == nil {
		return nil
	}
	var devices []string
	seen := map[string]bool{}
	for _, data := range records {
		if !strings.Contains(data, `"sig":"`) {
			continue
		}
		r, err := record.ParseReading([]byte(data))
		if err != nil || r.Sig == nil || seen[r.Device] {
			continue
		}
		seen[r.Device] = true
		devices = append(devices, r.Device)
	}
	slices.Sort(devices)
	var out []bundle.DeviceKey
	for _, d := range devices {
		out = append(out, s.keys(d)...)
	}
	return out
}

// calibrations returns the calibration records of the devices of the
// readings among records, sorted by device.
func (s *Service) calibrations(records ...string) []bundle.Calibration {
	if s.cals == nil {
		return nil
	}
	var devices []string
	seen := map[string]bool{}
	for _, data := range records {
		if !strings.Contains(data, `"type":"reading"`) {
			continue
		}
		r, err := record.ParseReading([]byte(data))
		if err != nil || seen[r.Device] {
			continue
		}
		seen[r.Device] = true
		devices = append(devices, r.Device)
	}
	slices.Sort(devices)
	var out []bundle.Calibration
	for _, d := range devices {
		out = append(out, s.cals(d)...)
	}
	return out
}

func nonNil(p []merkle.Hash) []merkle.Hash {
	if p == nil {
		return []merkle.Hash{}
	}
	return p
}
