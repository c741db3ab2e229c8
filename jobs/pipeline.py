"""Entry point for `spark-submit jobs/pipeline.py --conf PATH [--as-of YYYY-MM-DD]`.

The same `main` as `userprofile pipeline` (needs the userprofile package installed
or shipped with --py-files).
"""

import sys

from userprofile.cli import main

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))
