package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/coldchain/coldchain/cluster"
)

const clusterHelp = `Usage: coldchain cluster epoch
       coldchain cluster forget-epochs --yes

Cluster mode's record of the latest anchor epoch (docs/CLUSTER.md), in the
NATS the gateways share. Only a gateway whose shipment logs hold that
epoch may anchor.

  epoch           print the latest epoch: number, root, and the gateway
                  (member and lease term) that cut it or took over after it
  forget-epochs   delete the record, when the gateway that anchored is lost
                  for good: the next anchorer starts a new chain of epochs
                  from its own shipment logs. Bundles of earlier epochs still
                  verify against their roots on chain. Needs --yes.

GET /v1/cluster on any gateway shows the members and the leases.

Flags:
`

// clusterCmd runs `coldchain cluster`.
func clusterCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reg := registryFlags(fs)
	yes := fs.Bool("yes", false, "confirm forget-epochs")
	fs.Usage = func() { fmt.Fprint(stderr, clusterHelp); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (pos[0] != "epoch" && pos[0] != "forget-epochs") {
		fs.Usage()
		return fmt.Errorf("%w: cluster epoch|forget-epochs", errUsage)
	}
	if pos[0] == "forget-epochs" && !*yes {
		fs.Usage()
		return fmt.Errorf("%w: forget-epochs starts a new chain of epochs; say --yes if the anchoring gateway is lost for good", errUsage)
	}
	js, replicas, ctx, done, err := reg.openJS()
	if err != nil {
		return err
	}
	defer done()
	ep, err := cluster.OpenEpochs(ctx, js, replicas)
	if err != nil {
		return err
	}
	if pos[0] == "epoch" {
		m, _, ok, err := ep.Latest(ctx)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(stdout, "no epoch recorded: the first anchorer starts the chain")
			return nil
		}
		fmt.Fprintf(stdout, "epoch %d root %s by %s (term %d)\n", m.Number, m.Root, m.Member, m.Term)
		return nil
	}
	m, ok, err := ep.Forget(ctx)
	if err != nil {
		return err
	}
	if !ok {
		fmt.Fprintln(stdout, "no epoch recorded: nothing to forget")
		return nil
	}
	fmt.Fprintf(stdout, "forgot epoch %d (root %s, by %s): the next anchorer starts a new chain\n", m.Number, m.Root, m.Member)
	return nil
}
