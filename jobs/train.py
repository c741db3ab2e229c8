"""Entry point for `spark-submit jobs/train.py --conf PATH [--as-of YYYY-MM-DD]`.

The same `main` as `userprofile train` (needs the userprofile package installed
or shipped with --py-files).
"""

import sys

from userprofile.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
