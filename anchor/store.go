package anchor

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// The Pebble layout under <data dir>/anchor. Shipment ids never hold '/',
// so "l/<shipment>/" is an exact prefix. Integers are big-endian so keys
// sort in numeric order.
//
//	w/<kind>                    last journal position applied from the kind's stream
//	w/steps                     sequence of the last step applied from the step log (cluster mode)
//	w/steplog                   when that step log was created (RFC 3339)
//	s/<shipment>                anchored size (8) ‖ merkle.Tree state
//	l/<shipment>/<index>        leaf hash (32) ‖ kind (1) ‖ journal position (8) ‖ id length (2) ‖ id ‖ canonical bytes
//	i/<shipment>/<record id>    index (8)
//	e/<epoch>                   the epoch (JSON storedEpoch)
//	r/<epoch>                   where its root stands (JSON storedStatus)
//	a/<shipment>/<epoch>        entry index (8) ‖ size (8) ‖ shipment root (32) ‖ epoch root (32)
const (
	pMark   = "w/"
	pShip   = "s/"
	pLeaf   = "l/"
	pID     = "i/"
	pEpoch  = "e/"
	pStatus = "r/"
	pAnchor = "a/"
)

func be8(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func markKey(k record.Kind) []byte { return []byte(pMark + k.String()) }

var (
	stepKey    = []byte(pMark + "steps")
	stepLogKey = []byte(pMark + "steplog")
)

func shipKey(ship string) []byte { return []byte(pShip + ship) }
func leafPrefix(ship string) []byte {
	return []byte(pLeaf + ship + "/")
}
func leafKey(ship string, i uint64) []byte { return binary.BigEndian.AppendUint64(leafPrefix(ship), i) }
func idKey(ship, id string) []byte         { return []byte(pID + ship + "/" + id) }
func epochKey(n uint64) []byte             { return binary.BigEndian.AppendUint64([]byte(pEpoch), n) }
func statusKey(n uint64) []byte            { return binary.BigEndian.AppendUint64([]byte(pStatus), n) }
func anchorPrefix(ship string) []byte      { return []byte(pAnchor + ship + "/") }
func anchorKey(ship string, n uint64) []byte {
	return binary.BigEndian.AppendUint64(anchorPrefix(ship), n)
}

// upper returns the smallest key above every key with prefix p.
func upper(p []byte) []byte {
	u := append([]byte(nil), p...)
	u[len(u)-1]++ // prefixes end in '/', never 0xff
	return u
}

type leaf struct {
	hash merkle.Hash
	kind record.Kind
	seq  uint64
	id   string
	data []byte
}

func encodeLeaf(h merkle.Hash, kind record.Kind, seq uint64, id string, data []byte) []byte {
	b := make([]byte, 0, 32+1+8+2+len(id)+len(data))
	b = append(b, h[:]...)
	b = append(b, byte(kind))
	b = binary.BigEndian.AppendUint64(b, seq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	return append(b, data...)
}

func decodeLeaf(v []byte) (leaf, error) {
	if len(v) < 43 {
		return leaf{}, fmt.Errorf("leaf value of %d bytes", len(v))
	}
	var l leaf
	copy(l.hash[:], v)
	l.kind = record.Kind(v[32])
	l.seq = binary.BigEndian.Uint64(v[33:])
	n := int(binary.BigEndian.Uint16(v[41:]))
	if len(v) < 43+n {
		return leaf{}, fmt.Errorf("leaf value of %d bytes, id of %d", len(v), n)
	}
	l.id = string(v[43 : 43+n])
	l.data = append([]byte(nil), v[43+n:]...)
	return l, nil
}

// anchorRef is a shipment's entry in one epoch.
type anchorRef struct {
	epoch     uint64
	index     uint64
	size      uint64
	root      merkle.Hash
	epochRoot merkle.Hash
}

func encodeAnchorRef(a anchorRef) []byte {
	b := be8(a.index)
	b = binary.BigEndian.AppendUint64(b, a.size)
	b = append(b, a.root[:]...)
	return append(b, a.epochRoot[:]...)
}

func decodeAnchorRef(epoch uint64, v []byte) (anchorRef, error) {
	if len(v) != 80 {
		return anchorRef{}, fmt.Errorf("anchor value of %d bytes, want 80", len(v))
	}
	a := anchorRef{epoch: epoch, index: binary.BigEndian.Uint64(v), size: binary.BigEndian.Uint64(v[8:])}
	copy(a.root[:], v[16:])
	copy(a.epochRoot[:], v[48:])
	return a, nil
}

type storedEntry struct {
	Shipment string      `json:"s"`
	Size     uint64      `json:"n"`
	Root     merkle.Hash `json:"r"`
}

type storedEpoch struct {
	Number  uint64        `json:"number"`
	Prev    merkle.Hash   `json:"prev"`
	Root    merkle.Hash   `json:"root"`
	Cut     time.Time     `json:"cut"`
	Entries []storedEntry `json:"entries"`
}

func (se *storedEpoch) epoch() (Epoch, error) {
	entries := make([]Entry, len(se.Entries))
	for i, en := range se.Entries {
		entries[i] = Entry{Shipment: en.Shipment, Size: en.Size, Root: en.Root}
	}
	e := NewEpoch(se.Number, se.Prev, entries)
	if e.Root != se.Root {
		return e, fmt.Errorf("stored epoch %d rebuilds to root %s, stored %s", se.Number, e.Root, se.Root)
	}
	return e, nil
}

// storedStatus is where an epoch root stands: whether Submit succeeded
// and the last receipt Status gave.
type storedStatus struct {
	Submitted bool          `json:"submitted"`
	Receipt   storedReceipt `json:"receipt"`
	Updated   time.Time     `json:"updated"`
}

type storedReceipt struct {
	State     State  `json:"state"`
	ChainID   uint64 `json:"chain_id"`
	Contract  string `json:"contract"`
	TxHash    string `json:"tx"`
	Block     uint64 `json:"block"`
	BlockTime int64  `json:"block_time"`
}

func toStored(r Receipt) storedReceipt {
	return storedReceipt{State: r.State, ChainID: r.ChainID, Contract: r.Contract, TxHash: r.TxHash, Block: r.Block, BlockTime: r.BlockTime}
}

func (r storedReceipt) receipt() Receipt {
	return Receipt{State: r.State, ChainID: r.ChainID, Contract: r.Contract, TxHash: r.TxHash, Block: r.Block, BlockTime: r.BlockTime}
}

// get returns a copy of the value at key, or nil, false if there is none.
func get(db *pebble.DB, key []byte) ([]byte, bool, error) {
	v, closer, err := db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	return out, true, closer.Close()
}

func getJSON(db *pebble.DB, key []byte, v any) (bool, error) {
	raw, ok, err := get(db, key)
	if err != nil || !ok {
		return ok, err
	}
	return true, json.Unmarshal(raw, v)
}

// each calls fn for every key with prefix p in key order (or in reverse),
// until fn returns false or an error.
func each(db *pebble.DB, p []byte, reverse bool, fn func(k, v []byte) (bool, error)) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: upper(p)})
	if err != nil {
		return err
	}
	valid := it.First
	next := it.Next
	if reverse {
		valid, next = it.Last, it.Prev
	}
	for ok := valid(); ok; ok = next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		more, err := fn(it.Key(), v)
		if err != nil || !more {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}
