"""The command line of pyparallel-bench.

    pyparallel-bench URL --rate R [--duration S] [--connections C] [--workers K]
                     [--timeout S] [--header 'Name: value'] [--method M]
                     [--json FILE] [--label TEXT] [--spectrum] [--backend B]
    pyparallel-bench chart RUN.json [RUN.json ...] -o CHART.png [--title TEXT]

Exit status: 0 after a run (whatever it measured), 130 after a run cut short
by Ctrl-C (its figures are printed), 1 when the run could not start (a host
that does not resolve, an engine that cannot start), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import LoadgenError, run

__all__ = ["main"]


def _duration(text: str) -> float:
    """Seconds from '3', '2.5s', '500ms', '2m' or '1h'."""
    units = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    number, scale = text, 1.0
    for suffix, unit in units:
        if text.endswith(suffix) and not (suffix == "s" and text.endswith("ms")):
            number, scale = text[: -len(suffix)], unit
            break
    try:
        return float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (e.g. 10, 2.5s, 500ms, 2m)") from None


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyparallel-bench",
        description="Open-loop HTTP/1.1 load generator: sends requests at a fixed rate and "
                    "measures each latency from the request's scheduled time "
                    "(wrk2-style, no coordinated omission). "
                    "'pyparallel-bench chart --help' for the chart command.")
    parser.add_argument("url", help="http://host[:port]/path[?query]")
    parser.add_argument("-R", "--rate", type=float, required=True,
                        help="requests per second, whole run")
    parser.add_argument("-d", "--duration", type=_duration, default=10.0,
                        help="length of the schedule (default 10s)")
    parser.add_argument("-c", "--connections", type=int, default=10,
                        help="keep-alive connections (default 10)")
    parser.add_argument("-t", "--workers", "--threads", dest="workers", type=int, default=1,
                        help="engine worker threads of the generator (default 1)")
    parser.add_argument("--timeout", type=_duration, default=2.0,
                        help="a response later than this after its sending fails (default 2s)")
    parser.add_argument("-H", "--header", action="append", default=[],
                        help="extra request header 'Name: value' (repeatable)")
    parser.add_argument("-m", "--method", default="GET", help="request method (default GET)")
    parser.add_argument("--json", metavar="FILE", help="write the results and the full "
                        "percentile spectrum as JSON")
    parser.add_argument("--label", help="name of this run in --json output and charts")
    parser.add_argument("--spectrum", action="store_true",
                        help="also print the detailed percentile spectrum")
    parser.add_argument("--backend", choices=("auto", "uring", "epoll"), default=None,
                        help="I/O backend (default: PX_BACKEND or auto)")
    return parser


def _chart_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyparallel-bench chart",
        description="Draw the latency-by-percentile curves of several runs (their --json "
                    "files) on one chart.")
    parser.add_argument("runs", nargs="+", help="--json files of pyparallel-bench")
    parser.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    parser.add_argument("--title", help="chart title")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of pyparallel-bench and python -m pyparallel.loadgen."""
    args_list = sys.argv[1:] if argv is None else argv
    if args_list and args_list[0] == "chart":
        return _chart_main(args_list[1:])
    parser = _run_parser()
    args = parser.parse_args(args_list)
    from . import parse_url, report

    try:
        target = parse_url(args.url)
        sys.stdout.write(report.header(args.duration, target.url))
        sys.stdout.flush()
        result = run(args.url, rate=args.rate, duration=args.duration,
                     connections=args.connections, workers=args.workers, timeout=args.timeout,
                     method=args.method, headers=tuple(args.header), backend=args.backend)
    except LoadgenError as exc:
        parser.error(str(exc))
    except OSError as exc:  # a host that does not resolve, an engine that cannot start
        print(f"pyparallel-bench: cannot run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # before the run began; during it, Ctrl-C only stops it
        print("pyparallel-bench: interrupted", file=sys.stderr)
        return 130
    sys.stdout.write(report.text(result, spectrum=args.spectrum, with_header=False))
    if args.json:
        try:
            with open(args.json, "w") as f:
                json.dump(report.as_json(result, args.label), f, indent=1)
                f.write("\n")
        except OSError as exc:
            print(f"pyparallel-bench: cannot write {args.json}: {exc}", file=sys.stderr)
            return 1
    return 130 if result["interrupted"] else 0


def _chart_main(argv: list[str]) -> int:
    """pyparallel-bench chart RUN.json ... -o OUT."""
    parser = _chart_parser()
    args = parser.parse_args(argv)
    from . import chart

    try:
        out = chart.draw(args.runs, args.output, args.title)
    except chart.NoMatplotlib as exc:
        print(f"pyparallel-bench chart: {exc}", file=sys.stderr)
        return 1
    except LoadgenError as exc:
        print(f"pyparallel-bench chart: {exc}", file=sys.stderr)
        return 2
    print(f"chart written to {out}")
    return 0
