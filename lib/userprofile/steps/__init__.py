"""Steps: read tables, call the pure functions of the package, write tables.

These are what the CLI subcommands and ``jobs/*.py`` run. They are inside the
package (not in ``jobs/``) so that the wheel's console script carries them to
spark-submit and Databricks wheel tasks.
"""
