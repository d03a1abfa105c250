// Package bundle is the proof bundle of a shipment: the self-contained JSON
// document that shows, to anyone holding it, that a shipment's records are
// exactly those the gateway logged, in that order, and that the log's root
// was anchored on an EVM chain in a given transaction (docs/PROOFS.md).
//
// The package is pure, like merkle: it encodes the two kinds of epoch leaf
// the anchorer hashes (EntryBytes, HeaderBytes), decodes bundles strictly
// (Decode) and verifies them offline with nothing but the file (Verify). The
// only check that needs the outside world, that the anchor transaction exists
// on chain, goes through the one-method AnchorChecker that the caller
// provides (CheckAnchor).
package bundle
