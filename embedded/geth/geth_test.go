package geth

import (
	"context"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"go.uber.org/zap/zaptest"
)

func TestChainConfigHasMainnetRules(t *testing.T) {
	c := ChainConfig()
	if c.BogotaTime != nil || c.UBTTime != nil {
		t.Fatalf("future forks enabled: %s", c)
	}
	if c.OsakaTime == nil || *c.OsakaTime != 0 || c.ChainID.Int64() != ChainID {
		t.Fatalf("want Osaka at genesis and chain id %d: %s", ChainID, c)
	}
}

func TestRestartKeepsKeyAndChain(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	n, err := Open(Config{DataDir: dir, Listen: "127.0.0.1:0"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if n.URL() == "" {
		t.Fatal("no HTTP endpoint")
	}
	c, err := ethclient.DialContext(ctx, n.URL())
	if err != nil {
		t.Fatal(err)
	}
	if id, err := c.ChainID(ctx); err != nil || id.Int64() != ChainID {
		t.Fatalf("chain id %v, %v", id, err)
	}
	for range 3 {
		if err := n.Seal(); err != nil {
			t.Fatal(err)
		}
	}
	head, err := c.HeaderByNumber(ctx, nil)
	if err != nil || head.Number.Uint64() != 3 {
		t.Fatalf("head %v, %v; want block 3", head, err)
	}
	addr := crypto.PubkeyToAddress(n.Key().PublicKey)
	c.Close()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Seal(); err != ErrClosed {
		t.Fatalf("Seal after Close = %v", err)
	}

	m, err := Open(Config{DataDir: dir}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if got := crypto.PubkeyToAddress(m.Key().PublicKey); got != addr {
		t.Fatalf("dev account %s after restart, want %s", got, addr)
	}
	rc := m.Attach()
	defer rc.Close()
	again, err := ethclient.NewClient(rc).HeaderByNumber(ctx, nil)
	if err != nil || again.Hash() != head.Hash() {
		t.Fatalf("head after restart %v, %v; want %s", again, err, head.Hash())
	}
}
