"""localstripe with its state in memory only.

As shipped, localstripe pickles its whole store to /tmp/localstripe.pickle on every write and
loads that file at start. The file is shared by every localstripe on the machine, so parallel
instances corrupt each other's start ("pickle data was truncated"), a new instance inherits old
objects, and each write costs time in proportion to everything stored so far. The dev stack,
the tests and the benchmarks run it through this module instead:

    python -m loyalty.localstripe_in_memory --port 8420
"""

from __future__ import annotations

import sys

from localstripe import resources, server


def main() -> None:
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    sys.exit(server.start())


if __name__ == "__main__":
    main()
