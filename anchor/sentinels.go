package anchor

import "errors"

// Errors of the proof side. ErrUnknownRoot (errors.go) belongs to Chain.
var (
	// ErrUnknownShipment means no record of the shipment was ever logged.
	ErrUnknownShipment = errors.New("unknown shipment")
	// ErrUnknownRecord means the shipment's log holds no record with the id.
	ErrUnknownRecord = errors.New("unknown record")
	// ErrNotAnchored means the shipment, the record or the requested size
	// is logged but not yet in an epoch that is in a block.
	ErrNotAnchored = errors.New("not anchored yet")
	// ErrNotAnchoredSize means a consistency proof was asked from a size
	// of the log that no epoch anchored.
	ErrNotAnchoredSize = errors.New("size never anchored")
)
