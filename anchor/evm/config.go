package evm

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/coldchain/coldchain/pki"
)

// Chain kinds.
const (
	// KindEmbedded runs the in-process dev chain (embedded/geth).
	KindEmbedded = "embedded"
	// KindRPC talks to any EVM JSON-RPC endpoint.
	KindRPC = "rpc"
)

// Config is the `chain:` section of the gateway configuration. Every key can
// be set from the environment as COLDCHAIN_CHAIN_<KEY>. Key and Password are
// secrets: they are never logged.
type Config struct {
	// Kind is embedded (the default) or rpc.
	Kind string `yaml:"kind"`
	// RPCURL is the JSON-RPC endpoint (http, https, ws or wss) for kind rpc.
	RPCURL string `yaml:"rpc_url"`
	// Key is the hex private key that signs anchor transactions (kind rpc).
	// Use a key dedicated to anchoring: the nonce manager replaces pending
	// transactions of this account it does not know.
	Key string `yaml:"key"`
	// Keystore is an encrypted JSON key file, the alternative to Key.
	Keystore string `yaml:"keystore"`
	// Password unlocks Keystore.
	Password string `yaml:"password"`
	// Listen is the embedded chain's JSON-RPC HTTP address.
	Listen string `yaml:"listen"`
	// Contract is the anchor contract's address. Empty: deploy it on first
	// use and remember the address under the data dir.
	Contract string `yaml:"contract"`
	// ChainID is the chain id the node must report (checked at start).
	// 0 accepts any chain id for kind rpc; the embedded chain is 1337.
	ChainID int64 `yaml:"chain_id"`
	// Confirmations is the depth, counting the anchor's own block, at which a
	// root is final: 1 means final once in the head block.
	Confirmations int `yaml:"confirmations"`
	// StuckAfter is how long an anchor transaction may stay unmined before
	// it is replaced with a tip and fee cap both raised by 12.5 %.
	StuckAfter time.Duration `yaml:"stuck_after"`
	// MaxFeeGwei caps the fee per gas (gwei) of any anchor transaction;
	// replacements stop rising at the cap.
	MaxFeeGwei int64 `yaml:"max_fee_gwei"`
	// RPCTimeout bounds each JSON-RPC call; failed calls are retried with
	// backoff for as long as the caller's context allows.
	RPCTimeout time.Duration `yaml:"rpc_timeout"`
	// TLS checks an https:// RPC endpoint against a CA of its own and
	// presents a client certificate to one that asks for it (kind rpc).
	TLS pki.ClientTLS `yaml:"tls"`
}

// DefaultConfig returns the defaults: the embedded chain on 127.0.0.1:8545.
func DefaultConfig() Config {
	return Config{
		Kind:          KindEmbedded,
		Listen:        "127.0.0.1:8545",
		Confirmations: 3,
		StuckAfter:    3 * time.Minute,
		MaxFeeGwei:    500,
		RPCTimeout:    10 * time.Second,
	}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch c.Kind {
	case KindEmbedded:
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("chain.listen: %q is not host:port", c.Listen)
		}
		if c.ChainID != 0 && c.ChainID != 1337 {
			return fmt.Errorf("chain.chain_id: the embedded chain is 1337, got %d", c.ChainID)
		}
		if c.Key != "" || c.Keystore != "" {
			return errors.New("chain.key: the embedded chain signs with its own dev key; set chain.kind: rpc to use a key")
		}
	case KindRPC:
		if !strings.Contains(c.RPCURL, "://") {
			return fmt.Errorf("chain.rpc_url: %q must be a URL such as http://127.0.0.1:8545", c.RPCURL)
		}
		switch {
		case c.Key != "" && c.Keystore != "":
			return errors.New("chain.key: set chain.key or chain.keystore, not both")
		case c.Key == "" && c.Keystore == "":
			return errors.New("chain.key: kind rpc needs a signing key (chain.key or chain.keystore)")
		case c.Key != "":
			if _, err := parseKey(c.Key); err != nil {
				// The key itself is never echoed.
				return errors.New("chain.key: not a 32-byte hex private key")
			}
		}
		if c.ChainID < 0 {
			return fmt.Errorf("chain.chain_id: must not be negative, got %d", c.ChainID)
		}
		if err := c.TLS.Validate("chain.tls"); err != nil {
			return err
		}
		if c.TLS.IsSet() && !strings.HasPrefix(c.RPCURL, "https://") {
			return fmt.Errorf("chain.tls: applies to an https:// rpc_url, not %q", c.RPCURL)
		}
	default:
		return fmt.Errorf("chain.kind: must be embedded or rpc, got %q", c.Kind)
	}
	if c.Contract != "" && !common.IsHexAddress(c.Contract) {
		return fmt.Errorf("chain.contract: %q is not a 0x-prefixed address", c.Contract)
	}
	if c.Confirmations < 1 {
		return fmt.Errorf("chain.confirmations: must be at least 1, got %d", c.Confirmations)
	}
	if c.StuckAfter <= 0 {
		return fmt.Errorf("chain.stuck_after: must be positive, got %s", c.StuckAfter)
	}
	if c.MaxFeeGwei < 1 {
		return fmt.Errorf("chain.max_fee_gwei: must be at least 1, got %d", c.MaxFeeGwei)
	}
	if c.RPCTimeout <= 0 {
		return fmt.Errorf("chain.rpc_timeout: must be positive, got %s", c.RPCTimeout)
	}
	return nil
}
