package excursion

import "errors"

var (
	// ErrInvalidConfig is wrapped by every profile and Config validation
	// error; *FieldError names the offending field.
	ErrInvalidConfig = errors.New("invalid excursion config")
	// ErrInvalidSample is returned for a sample the detector cannot evaluate:
	// empty ID or device, a time outside (0, 2^62] ns, or a temperature that is
	// not finite or is at or below absolute zero. The caller should dead-letter it.
	ErrInvalidSample = errors.New("invalid sample")
	// ErrSnapshot is returned by UnmarshalBinary for data that is not a
	// well-formed detector snapshot.
	ErrSnapshot = errors.New("malformed excursion snapshot")
	// ErrSnapshotMismatch is returned by UnmarshalBinary for a snapshot taken
	// with a different profile, horizon or history size; replaying it under
	// other rules would not reproduce the alerts already published.
	ErrSnapshotMismatch = errors.New("excursion snapshot taken with another configuration")
)
