package merkle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// HashSize is the size of a Hash in bytes: the SHA-256 output size.
const HashSize = sha256.Size

// Domain-separation prefixes of RFC 6962 §2.1: a leaf hash and an interior
// node hash can never be confused because they hash different first bytes.
const (
	leafPrefix = 0x00
	nodePrefix = 0x01
)

// Hash is a SHA-256 tree hash: a leaf hash, an interior node hash or a root.
// Its text form, used by String, MarshalText and UnmarshalText, is 64
// lowercase hexadecimal digits.
type Hash [HashSize]byte

// ParseHash returns b as a Hash. It returns ErrWrongHashSize unless b is
// exactly HashSize bytes long; it never pads or truncates.
func ParseHash(b []byte) (Hash, error) {
	var h Hash
	if len(b) != HashSize {
		return h, fmt.Errorf("%w: got %d bytes", ErrWrongHashSize, len(b))
	}
	copy(h[:], b)
	return h, nil
}

// String returns h as 64 lowercase hexadecimal digits.
func (h Hash) String() string {
	return hex.EncodeToString(h[:])
}

// MarshalText returns h as 64 lowercase hexadecimal digits.
func (h Hash) MarshalText() ([]byte, error) {
	b := make([]byte, hex.EncodedLen(HashSize))
	hex.Encode(b, h[:])
	return b, nil
}

// UnmarshalText sets h from exactly 64 hexadecimal digits of either case. It
// returns ErrWrongHashSize for any other length and leaves h unchanged on
// error.
func (h *Hash) UnmarshalText(text []byte) error {
	if len(text) != hex.EncodedLen(HashSize) {
		return fmt.Errorf("%w: got %d hex digits", ErrWrongHashSize, len(text))
	}
	var out Hash
	if _, err := hex.Decode(out[:], text); err != nil {
		return fmt.Errorf("merkle: parse hash: %w", err)
	}
	*h = out
	return nil
}

// EmptyRoot returns the root of the tree with no leaves, which RFC 6962 §2.1
// defines as SHA-256 of the empty string,
// e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.
func EmptyRoot() Hash {
	return sha256.Sum256(nil)
}

// LeafHash returns the RFC 6962 §2.1 hash of one leaf: SHA-256(0x00 || data).
func LeafHash(data []byte) Hash {
	d := sha256.New()
	d.Write([]byte{leafPrefix})
	d.Write(data)
	var h Hash
	d.Sum(h[:0])
	return h
}

// NodeHash returns the RFC 6962 §2.1 hash of an interior node whose left and
// right children have hashes l and r: SHA-256(0x01 || l || r).
func NodeHash(l, r Hash) Hash {
	var buf [1 + 2*HashSize]byte
	buf[0] = nodePrefix
	copy(buf[1:], l[:])
	copy(buf[1+HashSize:], r[:])
	return sha256.Sum256(buf[:])
}
