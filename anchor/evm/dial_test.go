package evm

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rpc"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/coldchain/coldchain/pki"
	"github.com/coldchain/coldchain/pki/pkitest"
)

// chainIDService answers eth_chainId, all a TLS check needs of a node.
type chainIDService struct{}

func (chainIDService) ChainId() *hexutil.Big { return (*hexutil.Big)(hexutil.MustDecodeBig("0x1092")) }

// TestDialTLS: an https:// RPC endpoint that requires a client
// certificate answers a gateway with chain.tls set, and no one without.
func TestDialTLS(t *testing.T) {
	files := pkitest.New(t, "coldchain-gateway")
	srv := rpc.NewServer()
	if err := srv.RegisterName("eth", chainIDService{}); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	node := httptest.NewUnstartedServer(srv)
	node.TLS = files.Server(t, true)
	node.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	node.StartTLS()
	defer node.Close()
	ctx := context.Background()

	c, err := Dial(ctx, node.URL, files.Client())
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.ChainID(ctx)
	c.Close()
	if err != nil || id.Int64() != 4242 {
		t.Fatalf("chain id over TLS: %v, %v; want 4242", id, err)
	}
	for name, tls := range map[string]pki.ClientTLS{
		"system roots":          {},
		"no client certificate": {CA: files.CA},
		"another CA":            {CA: files.OtherCA, Cert: files.ClientCert, Key: files.ClientKey},
	} {
		c, err := Dial(ctx, node.URL, tls)
		if err != nil {
			t.Fatal(err) // HTTP dials lazily: the call fails
		}
		if _, err := c.ChainID(ctx); err == nil {
			t.Errorf("%s: the node answered", name)
		} else if !strings.Contains(err.Error(), "certificate") && !strings.Contains(err.Error(), "tls") {
			t.Errorf("%s: error %v does not say it is TLS", name, err)
		}
		c.Close()
	}
}

// TestCallWarnsWhileTheNodeStaysDown: retries of an unreachable node are
// logged at debug level at first, then as a warning, with a hint when the
// node's certificate is not trusted.
func TestCallWarnsWhileTheNodeStaysDown(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	a := &Anchorer{cfg: Config{RPCTimeout: time.Second}, log: zap.New(core)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	attempts := 0
	untrusted := &url.Error{Op: "Post", URL: "https://node:8545", Err: &tls.CertificateVerificationError{Err: errors.New("x509: certificate signed by unknown authority")}}
	err := a.call(ctx, "chain id", func(context.Context) error {
		if attempts++; attempts == 6 {
			cancel()
		}
		return untrusted
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("call: %v, want it to give up when its context ends", err)
	}
	warned := logs.FilterLevelExact(zap.WarnLevel).All()
	if len(warned) != 1 || logs.FilterLevelExact(zap.DebugLevel).Len() != 4 {
		t.Fatalf("%d warnings and %d debug lines over 5 retries, want 1 warning (the fifth) and 4 debug lines", len(warned), logs.FilterLevelExact(zap.DebugLevel).Len())
	}
	if hint, _ := warned[0].ContextMap()["hint"].(string); !strings.Contains(hint, "chain.tls.ca") {
		t.Fatalf("warning %v has no hint naming chain.tls.ca", warned[0].ContextMap())
	}
}
