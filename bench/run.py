"""Benchmark s3po against its peers on one local S3 server with a fixed latency.

    make bench                                   # all six suites, the defaults below
    make bench BENCH_ARGS='--suite small --repeat 5 --variants s3po boto3-threads'
    make bench BENCH_ARGS='--suite large --large-size-mib 256'
    make bench BENCH_ARGS='--suite cli'                        # s3po vs s5cmd vs aws cli
    make bench BENCH_ARGS='--suite memory'                     # tree sync memory, 20k vs 200k keys
    make bench BENCH_ARGS='--suite dask'                       # copy on a LocalCluster vs one batch

Starts one S3 server on 127.0.0.1 (rclone serve s3 by default); each suite puts
bench/delayproxy.py in front of it, which holds each response for the latency. Six suites:

- small (bench/small.py): --objects objects of --size bytes up and down, with
  --concurrency requests in flight;
- single (bench/single.py): the CPU of one small PUT and one GET, back to back, straight
  to the server: s3po's lean and botocore request paths, boto3, minio-py, obstore;
- large (bench/large.py): one file of --large-size-mib MiB up and down, 8 parts in flight;
- cli (bench/cli.py): --cli-files small files up, a no-change sync, and down, with the
  s3po, s5cmd and aws commands, --concurrency requests in flight;
- memory (bench/tree_memory.py): peak RSS of tree syncs of 20,000 and 200,000 keys (no server);
- dask (bench/dask_suite.py): a copy of many small objects on a LocalCluster against one batch.

Each runs every variant --repeat (--large-repeat) times, each time in a process of its own,
interleaved in an order that rotates each round, and prints one table (medians, with
min-max) and writes its numbers as JSON. Peers that cannot be installed here get a row
that says why; the run goes on.
"""

import argparse
import sys
import time
from pathlib import Path

import cli
import harness
import dask_suite
import large
import servers
import single
import small
import tree_memory

BENCH = Path(__file__).resolve().parent
SUITES = ("small", "single", "large", "cli", "memory", "dask")
NEEDS_NO_SERVER = ("memory",)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative_float(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _variants(parser, option, chosen, known):
    names = [name for item in chosen for name in item.split(",") if name]
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"{option}: unknown variants {', '.join(unknown)}; "
                     f"pick from {', '.join(known)}")
    return list(dict.fromkeys(names))


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"small variants: {', '.join(small.VARIANTS)}; large variants: "
               f"{', '.join(large.VARIANTS)} (the defaults)")
    parser.add_argument("--suite", choices=SUITES + ("all",), default="all",
                        help="which suite(s) to run: small, single, large, cli, memory, dask (default all)")
    parser.add_argument("--server", choices=("auto", "rclone", "s3rver", "moto"), default="auto")
    parser.add_argument("--latency-ms", type=_non_negative_float, default=20.0,
                        help="added to every response by the proxy")
    small_options = parser.add_argument_group("small suite")
    small_options.add_argument("--objects", type=_positive_int, default=1000)
    small_options.add_argument("--size", type=_positive_int, default=4096, help="bytes per object")
    small_options.add_argument("--concurrency", type=_positive_int, default=64)
    small_options.add_argument("--repeat", type=_positive_int, default=3)
    small_options.add_argument("--json", type=Path, default=BENCH / "results" / "latest.json",
                               help="where to write the numbers (a .md table is written beside it)")
    small_options.add_argument("--variants", nargs="+", default=list(small.VARIANTS),
                               help="space- or comma-separated subset, in this order")
    large_options = parser.add_argument_group("large suite")
    large_options.add_argument("--large-size-mib", type=_positive_int, default=1024,
                               help="size of the one file, in MiB")
    large_options.add_argument("--large-latency-ms", type=_non_negative_float, default=None,
                               help="the proxy's latency for this suite (default: --latency-ms)")
    large_options.add_argument("--large-repeat", type=_positive_int, default=2)
    large_options.add_argument("--large-store", choices=("s3", "plain"), default="s3",
                               help="s3: the proxy verifies, keeps and returns checksums as S3 does "
                                    "(default); plain: the server as it is")
    large_options.add_argument("--large-json", type=Path,
                               default=BENCH / "results" / "large.json",
                               help="where to write the numbers (a .md table is written beside it)")
    large_options.add_argument("--large-variants", nargs="+", default=list(large.VARIANTS),
                               help="space- or comma-separated subset, in this order")
    single_options = parser.add_argument_group("single suite")
    single_options.add_argument("--single-calls", type=_positive_int, default=2000)
    single_options.add_argument("--single-repeat", type=_positive_int, default=3)
    single_options.add_argument("--single-json", type=Path, default=BENCH / "results" / "single.json",
                                help="where to write the numbers (a .md table is written beside it)")
    single_options.add_argument("--single-variants", nargs="+", default=list(single.VARIANTS),
                                help="space- or comma-separated subset, in this order")
    cli_options = parser.add_argument_group("cli suite")
    cli_options.add_argument("--cli-files", type=_positive_int, default=2000)
    cli_options.add_argument("--cli-repeat", type=_positive_int, default=3)
    cli_options.add_argument("--cli-json", type=Path, default=BENCH / "results" / "cli.json",
                             help="where to write the numbers (a .md table is written beside it)")
    cli_options.add_argument("--cli-variants", nargs="+", default=list(cli.VARIANTS),
                             help="space- or comma-separated subset, in this order")
    dask_options = parser.add_argument_group("dask suite")
    dask_options.add_argument("--dask-objects", type=_positive_int, default=20_000,
                              help="objects copied in the larger runs (the smaller ones copy a quarter)")
    dask_options.add_argument("--dask-size", type=_positive_int, default=1024, help="bytes per object")
    dask_options.add_argument("--dask-repeat", type=_positive_int, default=1)
    dask_options.add_argument("--dask-json", type=Path, default=BENCH / "results" / "dask.json",
                              help="where to write the numbers (a .md table is written beside it)")
    args = parser.parse_args(argv)
    args.cli_variants = _variants(parser, "--cli-variants", args.cli_variants, cli.VARIANTS)
    args.single_variants = _variants(parser, "--single-variants", args.single_variants, single.VARIANTS)
    args.variants = _variants(parser, "--variants", args.variants, small.VARIANTS)
    args.large_variants = _variants(parser, "--large-variants", args.large_variants,
                                    large.VARIANTS)
    return args


def main(argv=None):
    args = parse_args(argv)
    suites = SUITES if args.suite == "all" else (args.suite,)
    server, notes = (servers.start_server(args.server) if set(suites) - set(NEEDS_NO_SERVER)
                     else (None, []))
    took = {}
    try:
        for name in suites:
            started = time.perf_counter()
            {"small": small, "single": single, "large": large, "cli": cli,
             "memory": tree_memory, "dask": dask_suite}[name].run(args, server, notes)
            took[name] = time.perf_counter() - started
    finally:
        if server is not None:
            server.stop()
    harness.log("took " + ", ".join(f"{name} suite {seconds:.0f} s"
                                    for name, seconds in took.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
