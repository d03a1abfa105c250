package evm

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/coldchain/coldchain/merkle"
	"github.com/ethereum/go-ethereum/common"
)

// perShipmentTxGas is the gas of one transaction per shipment, the figure
// the issue compares against (docs/CHAIN.md).
const perShipmentTxGas = 45_677

// BenchmarkAnchorGas measures the gas of the one anchor transaction of an
// epoch of n shipments, on go-ethereum's simulated backend with mainnet
// rules. The epoch root is an RFC 6962 root over synthetic (shipment id,
// tree size, shipment root) leaves; only the 32-byte root goes on chain, so
// the gas does not depend on n. Figures, not timings:
//
//	go test -run '^$' -bench AnchorGas -benchtime 1x ./anchor/evm/
func BenchmarkAnchorGas(b *testing.B) {
	for _, n := range []int{1, 100, 1_000, 10_000} {
		b.Run(fmt.Sprintf("shipments=%d", n), func(b *testing.B) {
			sim := newSim(b)
			a := newAnchorer(b, sim, testConfig(), b.TempDir())
			var gas uint64
			for i := 0; i < b.N; i++ {
				root := epochRoot(n, i)
				if err := a.Submit(b.Context(), uint64(i+1), root); err != nil {
					b.Fatal(err)
				}
				for range a.cfg.Confirmations {
					sim.Commit()
				}
				r, err := a.Status(b.Context(), root)
				if err != nil {
					b.Fatal(err)
				}
				rc, err := sim.Client().TransactionReceipt(b.Context(), common.HexToHash(r.TxHash))
				if err != nil {
					b.Fatal(err)
				}
				gas = rc.GasUsed
			}
			b.ReportMetric(float64(gas), "gas/epoch")
			b.ReportMetric(float64(gas)/float64(n), "gas/shipment")
			b.ReportMetric(float64(perShipmentTxGas*n), "gas/epoch-if-one-tx-per-shipment")
		})
	}
}

// epochRoot is the root of a synthetic epoch tree of n shipments.
func epochRoot(n, epoch int) common.Hash {
	leaves := make([]merkle.Hash, n)
	for i := range leaves {
		id := fmt.Sprintf("SHP-%06d", i)
		shipRoot := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", id, epoch)))
		leaf := binary.BigEndian.AppendUint64([]byte(id), uint64(100+i))
		leaves[i] = merkle.LeafHash(append(leaf, shipRoot[:]...))
	}
	root, err := merkle.RootAt(merkle.NewLevels(leaves), uint64(n))
	if err != nil {
		panic(err)
	}
	return common.Hash(root)
}
