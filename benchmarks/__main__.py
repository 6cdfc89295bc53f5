"""``python -m benchmarks {throughput,learning,scaling} [options]``: see each suite's ``--help``."""

import importlib
import sys

SUITES = ("throughput", "learning", "scaling")


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in SUITES:
        print(f"usage: python -m benchmarks {{{','.join(SUITES)}}} [--quick] [options]; "
              "each suite writes benchmarks/results/<suite>.md and .json", file=sys.stderr)
        return 2
    suite = sys.argv[1]
    return importlib.import_module(f"benchmarks.{suite}").main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
