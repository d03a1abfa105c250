package evm

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"
	"go.uber.org/zap"

	"github.com/coldchain/coldchain/embedded/geth"
	"github.com/coldchain/coldchain/pki"
)

// Directories under the gateway's data dir.
const (
	// ChainDir holds the embedded chain (kind embedded).
	ChainDir = "chain"
	// StateDir holds the anchorer's state: the in-flight transaction and the
	// contract address remembered per chain id.
	StateDir = "anchor-evm"
)

// Open starts what cfg asks for and returns a ready anchorer: for kind
// embedded, the dev chain in dataDir/chain with JSON-RPC on cfg.Listen,
// signing with its dev key; for kind rpc, a connection to cfg.RPCURL signing
// with cfg.Key or the unlocked cfg.Keystore. The chain id is checked and the
// contract deployed if needed before Open returns. The caller must Close it.
func Open(ctx context.Context, cfg Config, dataDir string, log *zap.Logger) (*Anchorer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	stateDir := filepath.Join(dataDir, StateDir)
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	switch cfg.Kind {
	case KindEmbedded:
		node, err := geth.Open(geth.Config{DataDir: filepath.Join(dataDir, ChainDir), Listen: cfg.Listen}, log.Named("geth"))
		if err != nil {
			return nil, err
		}
		rpcc := node.Attach()
		client := ethclient.NewClient(rpcc)
		if cfg.ChainID == 0 {
			cfg.ChainID = geth.ChainID
		}
		a, err := New(ctx, cfg, client, node.Key(), stateDir, log)
		if err != nil {
			client.Close()
			return nil, errors.Join(err, node.Close())
		}
		a.dev = node
		a.closers = append(a.closers, func() error { client.Close(); return nil }, node.Close)
		return a, nil
	case KindRPC:
		key, err := loadKey(cfg)
		if err != nil {
			return nil, err
		}
		client, err := Dial(ctx, cfg.RPCURL, cfg.TLS)
		if err != nil {
			return nil, err
		}
		a, err := New(ctx, cfg, client, key, stateDir, log)
		if err != nil {
			client.Close()
			return nil, err
		}
		a.closers = append(a.closers, func() error { client.Close(); return nil })
		return a, nil
	}
	return nil, fmt.Errorf("chain.kind: %q", cfg.Kind)
}

// DevChain is the embedded chain under dataDir, for tests and tools that
// need its sealing or key; nil unless the anchorer runs it.
func (a *Anchorer) DevChain() *geth.Node {
	n, _ := a.dev.(*geth.Node)
	return n
}

func loadKey(cfg Config) (*ecdsa.PrivateKey, error) {
	if cfg.Key != "" {
		k, err := parseKey(cfg.Key)
		if err != nil {
			return nil, errors.New("chain.key: not a 32-byte hex private key")
		}
		return k, nil
	}
	b, err := os.ReadFile(cfg.Keystore)
	if err != nil {
		return nil, fmt.Errorf("chain.keystore: %w", err)
	}
	k, err := keystore.DecryptKey(b, cfg.Password)
	if err != nil {
		return nil, fmt.Errorf("chain.keystore: %s: %w", cfg.Keystore, err)
	}
	return k.PrivateKey, nil
}

func parseKey(s string) (*ecdsa.PrivateKey, error) {
	return crypto.HexToECDSA(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
}

// Dial connects to an EVM JSON-RPC endpoint, over TLS with t's CA and
// client certificate when set (an https:// URL).
func Dial(ctx context.Context, url string, t pki.ClientTLS) (*ethclient.Client, error) {
	tc, err := t.Config("chain.tls")
	if err != nil {
		return nil, err
	}
	var opts []rpc.ClientOption
	if tc != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		opts = append(opts, rpc.WithHTTPClient(&http.Client{Transport: tr}))
	}
	c, err := rpc.DialOptions(ctx, url, opts...)
	if err != nil {
		return nil, fmt.Errorf("chain.rpc_url: dial %s: %w", url, err)
	}
	return ethclient.NewClient(c), nil
}
