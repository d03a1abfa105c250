package device

import "fmt"

// What the gateway does with a reading of a device that is not in the
// registry (devices.unknown).
const (
	// UnknownAccept stores and proves it like any other.
	UnknownAccept = "accept"
	// UnknownFlag stores and proves it, and opens an unregistered_device
	// warning once per device and shipment: the evidence is kept, and the
	// shipper sees that a sensor of unknown calibration took it.
	UnknownFlag = "flag"
	// UnknownReject refuses it as unknown_device (dead-lettered with its
	// bytes, like any refused input).
	UnknownReject = "reject"
)

// Config is the devices section of the gateway configuration.
type Config struct {
	// Unknown is accept, flag (the default) or reject.
	Unknown string `yaml:"unknown"`
}

// DefaultConfig flags readings of unregistered devices.
func DefaultConfig() Config { return Config{Unknown: UnknownFlag} }

// Validate names the key of an invalid setting.
func (c Config) Validate() error {
	switch c.Unknown {
	case UnknownAccept, UnknownFlag, UnknownReject:
		return nil
	}
	return fmt.Errorf("devices.unknown: must be accept, flag or reject, got %q", c.Unknown)
}
