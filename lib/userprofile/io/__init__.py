"""Table I/O shared by every stage: the session, table names, reads and writes, run context,
progress, and the queries several stages share."""
