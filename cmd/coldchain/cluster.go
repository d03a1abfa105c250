package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/cluster"
)

const clusterHelp = `Usage: coldchain cluster epoch
       coldchain cluster reset-steps --yes

Cluster mode's anchor step log (docs/CLUSTER.md), in the NATS the
gateways share: every journal batch the anchorer applied and every epoch
it cut, in order. Whichever gateway holds the anchor lease replays it and
continues the same shipment logs and epoch chain.

  epoch         print the latest epoch cut: number, root, the gateway that
                cut it, when, and the step that recorded it
  reset-steps   delete the step log and the recorded anchor contract, when
                no gateway's shipment logs follow the log any more (GET
                /v1/cluster says why the anchor lease has no contender) or
                the chain was reset: the next anchorer starts a new log
                from its own shipment logs, continues its own epoch chain
                and records its own contract. Bundles of earlier epochs
                still verify against their roots on chain. Needs --yes.

GET /v1/cluster on any gateway shows the members and the leases.

Flags:
`

// clusterCmd runs `coldchain cluster`.
func clusterCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reg := registryFlags(fs)
	yes := fs.Bool("yes", false, "confirm reset-steps")
	fs.Usage = func() { fmt.Fprint(stderr, clusterHelp); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (pos[0] != "epoch" && pos[0] != "reset-steps") {
		fs.Usage()
		return fmt.Errorf("%w: cluster epoch|reset-steps", errUsage)
	}
	if pos[0] == "reset-steps" && !*yes {
		fs.Usage()
		return fmt.Errorf("%w: reset-steps makes the next anchorer start a new step log from its own shipment logs; say --yes if none follows the current one", errUsage)
	}
	js, replicas, ctx, done, err := reg.openJS()
	if err != nil {
		return err
	}
	defer done()
	if pos[0] == "epoch" {
		steps, err := anchor.OpenStepLog(ctx, js, replicas, "")
		if err != nil {
			return err
		}
		st, ok, err := steps.LatestCut(ctx)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintln(stdout, "no epoch cut yet: the first anchorer starts the chain")
			return nil
		}
		fmt.Fprintf(stdout, "epoch %d root %s by %s at %s (step %d)\n", st.Epoch, st.Root, st.By, st.Cut.Format(time.RFC3339), st.Seq)
		return nil
	}
	ok, err := anchor.DeleteStepLog(ctx, js)
	if err != nil {
		return err
	}
	if ok {
		fmt.Fprintln(stdout, "deleted the step log: the next anchorer starts a new one from its own shipment logs")
	} else {
		fmt.Fprintln(stdout, "no step log to delete")
	}
	st, err := cluster.OpenState(ctx, js, replicas)
	if err != nil {
		return err
	}
	rec, ok, err := st.ForgetContract(ctx)
	if err != nil {
		return err
	}
	if ok {
		fmt.Fprintf(stdout, "forgot the anchor contract %s (chain id %d): the next anchorer records its own; bundles of earlier epochs still verify against it\n", rec.Contract, rec.ChainID)
	}
	return nil
}
