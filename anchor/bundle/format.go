package bundle

import (
	"crypto/sha256"
	"strconv"
	"time"

	"github.com/coldchain/coldchain/merkle"
	"github.com/coldchain/coldchain/record"
)

// Format is the value of a bundle's "format" member. A change to the bundle
// or to the epoch leaf encodings is a new format; bundles of this one stay
// verifiable as they are.
const Format = "coldchain-proof/1"

// Bundle is a shipment's proof: its records (all of them, or one with its
// audit path), the shipment log's size and root, the shipment's entry in an
// anchored epoch, and where that epoch's root was anchored.
//
// Exactly one of Records and Record is set: Records for a full bundle,
// Record for a selective disclosure of one record.
type Bundle struct {
	Format   string `json:"format"`
	Shipment string `json:"shipment"`
	// TreeSize is the number of records in the shipment log when the epoch
	// was cut; the proof is about the log's first TreeSize records.
	TreeSize uint64 `json:"tree_size"`
	// Root is the RFC 6962 root of those records' canonical encodings.
	Root merkle.Hash `json:"root"`
	// Records holds every record [0, TreeSize) in log order, each its
	// canonical encoding (docs/RECORDS.md) as a JSON string.
	Records []string `json:"records,omitempty"`
	// Record is one record with its audit path, instead of Records.
	Record *Record `json:"record,omitempty"`
	// Consistency, if set, proves that an earlier anchored size of the log
	// is a prefix of this one: the log only grew.
	Consistency *Consistency `json:"consistency,omitempty"`
	Epoch       Epoch        `json:"epoch"`
	Anchor      Anchor       `json:"anchor"`
	// DeviceKeys holds the registered Ed25519 keys of the devices whose
	// disclosed readings carry a sig: Verify checks each such reading was
	// signed by its device's key. Not covered by the anchor: compare a
	// key's fingerprint with the one its device's maker or owner gives.
	DeviceKeys []DeviceKey `json:"device_keys,omitempty"`
	// Calibrations holds the calibration records, from the gateway's
	// device registry, of the devices whose readings are disclosed: Verify
	// counts, per device, the readings taken outside every calibration
	// window. Like the keys, not covered by the anchor: the certificate
	// hash ties each record to the lab's certificate.
	Calibrations []Calibration `json:"calibrations,omitempty"`
}

// Calibration is one calibration record of one device: the device, its
// serial, and the record's members (lab, accreditation, reference,
// cert_sha256, calibrated_at, due_at, uncertainty_c) at the same level.
type Calibration struct {
	Device string `json:"device"`
	Serial string `json:"serial"`
	record.Calibration
}

// DeviceKey is one signing key of one device. A device that replaced its
// key has one entry per key; a reading verifies with any of them.
type DeviceKey struct {
	Device string `json:"device"`
	// PublicKey is the 32-byte Ed25519 public key (base64 in JSON).
	PublicKey []byte `json:"public_key"`
	// Added is when the key was registered with the gateway.
	Added time.Time `json:"added"`
}

// Record is one disclosed record.
type Record struct {
	// Index is the record's position in the shipment log, from 0.
	Index uint64 `json:"index"`
	// Data is the record's canonical encoding.
	Data string `json:"data"`
	// Path is the RFC 6962 §2.1.1 audit path of leaf Index in the tree of
	// TreeSize leaves.
	Path []merkle.Hash `json:"path"`
}

// Consistency is an RFC 6962 §2.1.2 consistency proof from an earlier size
// of the shipment log to the bundle's.
type Consistency struct {
	FromSize uint64        `json:"from_size"`
	FromRoot merkle.Hash   `json:"from_root"`
	Path     []merkle.Hash `json:"path"`
}

// Epoch is the shipment's entry in an epoch and the epoch's header.
type Epoch struct {
	// Number counts epochs from 1.
	Number uint64 `json:"number"`
	// Prev is the root of epoch Number-1, or 32 zero bytes for epoch 1.
	Prev merkle.Hash `json:"prev"`
	// Entries is the number of leaves of the epoch tree: one per shipment
	// whose log grew in the epoch, sorted by shipment id.
	Entries uint64 `json:"entries"`
	// EntriesRoot is the RFC 6962 root of the epoch tree.
	EntriesRoot merkle.Hash `json:"entries_root"`
	// Index is the shipment's leaf in the epoch tree and Path its audit path.
	Index uint64        `json:"index"`
	Path  []merkle.Hash `json:"path"`
	// Root is SHA-256 of HeaderBytes: the value anchored on chain.
	Root merkle.Hash `json:"root"`
}

// Anchor says where the epoch root was anchored.
type Anchor struct {
	ChainID  uint64 `json:"chain_id"`
	Contract string `json:"contract"` // 0x-prefixed hex address
	Tx       string `json:"tx"`       // 0x-prefixed transaction hash
	Block    uint64 `json:"block"`
	// BlockTime is the block timestamp, Unix seconds.
	BlockTime int64 `json:"block_time"`
	// State is "included" or "final" as the gateway knew it when it wrote
	// the bundle; only a check on chain tells what holds now.
	State string `json:"state"`
}

// EntryBytes returns the epoch leaf of one shipment: the JCS (RFC 8785)
// object {"root":<hex>,"shipment":<id>,"size":<n>,"type":"shipment","v":1}.
// Its leaf hash is SHA-256(0x00 ‖ EntryBytes), RFC 6962 §2.1.
// shipment must be a valid id (record.ValidID), which needs no escaping.
func EntryBytes(shipment string, size uint64, root merkle.Hash) []byte {
	b := make([]byte, 0, 96+len(shipment))
	b = append(b, `{"root":"`...)
	b = append(b, root.String()...)
	b = append(b, `","shipment":`...)
	b = record.AppendString(b, shipment)
	b = append(b, `,"size":`...)
	b = strconv.AppendUint(b, size, 10)
	b = append(b, `,"type":"shipment","v":1}`...)
	return b
}

// HeaderBytes returns the header of an epoch: the JCS (RFC 8785) object
// {"entries":<n>,"entries_root":<hex>,"epoch":<n>,"prev":<hex>,"type":"epoch","v":1}.
// The epoch root, the value anchored on chain, is SHA-256 of these bytes
// (EpochRoot); through prev it commits to every earlier epoch.
func HeaderBytes(number uint64, prev merkle.Hash, entries uint64, entriesRoot merkle.Hash) []byte {
	b := make([]byte, 0, 220)
	b = append(b, `{"entries":`...)
	b = strconv.AppendUint(b, entries, 10)
	b = append(b, `,"entries_root":"`...)
	b = append(b, entriesRoot.String()...)
	b = append(b, `","epoch":`...)
	b = strconv.AppendUint(b, number, 10)
	b = append(b, `,"prev":"`...)
	b = append(b, prev.String()...)
	b = append(b, `","type":"epoch","v":1}`...)
	return b
}

// EpochRoot returns SHA-256 of an epoch's header bytes.
func EpochRoot(number uint64, prev merkle.Hash, entries uint64, entriesRoot merkle.Hash) merkle.Hash {
	return sha256.Sum256(HeaderBytes(number, prev, entries, entriesRoot))
}
