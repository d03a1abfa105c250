package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/coldchain/coldchain/anchor"
	"github.com/coldchain/coldchain/cluster"
	"github.com/coldchain/coldchain/journal"
)

const clusterHelp = `Usage: coldchain cluster epoch
       coldchain cluster reset-steps --yes
       coldchain cluster partitions [--set N --yes]

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
  partitions    print the cluster's partition count (cluster.partitions,
                recorded by the first gateway that started); with --set N
                and --yes, record N instead. A gateway whose count differs
                does not start, since a shipment's partition is in its
                readings' subjects: stop every gateway, let GET /v1/cluster
                show no lag first, set the count, then start them with the
                new cluster.partitions.

GET /v1/cluster on any gateway shows the members and the leases.

Flags:
`

// clusterCmd runs `coldchain cluster`.
func clusterCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reg := registryFlags(fs)
	yes := fs.Bool("yes", false, "confirm reset-steps or partitions --set")
	set := fs.Int("set", -1, "partitions: the count to record (0 turns partitions off)")
	fs.Usage = func() { fmt.Fprint(stderr, clusterHelp); fs.PrintDefaults() }
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (pos[0] != "epoch" && pos[0] != "reset-steps" && pos[0] != "partitions") {
		fs.Usage()
		return fmt.Errorf("%w: cluster epoch|reset-steps|partitions", errUsage)
	}
	if pos[0] == "partitions" && *set >= 0 {
		switch {
		case *set > journal.MaxPartitions:
			return fmt.Errorf("%w: --set: at most %d partitions", errUsage, journal.MaxPartitions)
		case !*yes:
			fs.Usage()
			return fmt.Errorf("%w: partitions --set changes where every gateway puts and reads readings; stop them all and say --yes", errUsage)
		}
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
	if pos[0] == "partitions" {
		st, err := cluster.OpenState(ctx, js, replicas)
		if err != nil {
			return err
		}
		if *set >= 0 {
			if err := st.SetPartitions(ctx, *set, "coldchain cluster partitions --set"); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "recorded %d partitions: start every gateway with cluster.partitions: %d\n", *set, *set)
			return nil
		}
		rec, ok, err := st.Partitions(ctx)
		switch {
		case err != nil:
			return err
		case !ok:
			fmt.Fprintln(stdout, "no partition count recorded yet: the first gateway to start records its cluster.partitions")
		default:
			fmt.Fprintf(stdout, "%d partitions (recorded by %s)\n", rec.Partitions, rec.Member)
		}
		return nil
	}
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
