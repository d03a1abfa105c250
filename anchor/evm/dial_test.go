package evm

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rpc"

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
