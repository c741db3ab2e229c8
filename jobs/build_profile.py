"""Entry point for `spark-submit jobs/build_profile.py --conf PATH [--as-of YYYY-MM-DD]`.

The same `main` as `userprofile profile` (needs the userprofile package installed
or shipped with --py-files).
"""

import sys

from userprofile.cli import main

if __name__ == "__main__":
    sys.exit(main(["profile", *sys.argv[1:]]))
