"""Side-by-side benchmark: the gateway against PostGraphile v4 on the portal's own operations.

`python -m bench --quick` builds a bulk-loaded dataset in its own embedded PostgreSQL, serves it
with `account-gateway serve` (production settings, one process) and with PostGraphile v4 (when
node and npm are present), drives both with the same load generator, interleaving them, and
prints requests/s, p50, p99 and SQL statements per request. See bench/README.md.
"""
