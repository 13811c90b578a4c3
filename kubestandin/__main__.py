"""``python -m kubestandin``: run the stand-in alone, print its kubeconfig, serve until Ctrl-C.

For trying kubectl against it, or driving it from a tool outside this project. Nothing of
the eevee operator is started.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from kubestandin.server import StandIn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubestandin", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--directory", help="where to write kubeconfig and ca.crt (default: a temporary folder)")
    parser.add_argument("--namespace", action="append", default=[], help="create this namespace too (repeatable)")
    args = parser.parse_args(argv)
    standin = StandIn(port=args.port, directory=args.directory).start()
    for name in args.namespace:
        standin.create_namespace(name)
    sys.stdout.write(standin.kubeconfig.read_text())
    print(f"# kubeconfig written to {standin.kubeconfig}; Ctrl-C stops the server", file=sys.stderr, flush=True)
    sys.stdout.flush()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
