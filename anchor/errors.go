package anchor

import "errors"

// ErrUnknownRoot is returned by Chain.Status for a root never submitted.
var ErrUnknownRoot = errors.New("root not submitted")
