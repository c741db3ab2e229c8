"""Entry point for `spark-submit jobs/ingest.py --conf PATH [--as-of YYYY-MM-DD]`.

The same `main` as `userprofile ingest` (needs the userprofile package installed
or shipped with --py-files).
"""

import sys

from userprofile.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
