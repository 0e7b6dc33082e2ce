"""`musicsync sync DIR`: the server-independent half of syncing a folder.

One run, and the module doing each step:

1. guard.open_folder(DIR) -> (SyncFolder, FolderIndex): refuses a folder that
   does not exist, or was synced before and lost its .musicsync marker (an
   unmounted disk); marks and remembers a new one. trash.Trash(DIR).purge().
2. scan.scan(DIR, index) -> ScanResult: the folder's songs {local name: sha256},
   hashing only new or changed files. names.NameMap(rules, index.names())
   .server_view(result.songs()) turns local names into server paths
   (plus the names the server would refuse: report them). unique_songs(local,
   base) keeps one copy of a song held twice.
3. (client) the server's library now: {server path: sha256} and sizes.
4. plan.plan(base, local, remote, Options(...)) -> Plan (or MassDelete: stop,
   exit 2, nothing changed). base = {path: e.sha256 for path, e in
   index.base().items()}. `--dry-run` prints the Plan and stops.
5. Apply, each side in the order deletes, moves, transfers, recording every
   finished step in a ledger.Ledger(index, local, remote, sizes):
   local: apply_local.LocalApplier: delete(path), move_all(plan.local_moves),
   and per download: temp_path(path, sha) (the client writes and verifies the
   file there, resuming from its size), then place(temp, path, sha,
   replaces_local=...);
   remote (client): remote deletes, moves, uploads (Upload.replaces), each
   followed by ledger.remote_changed(path, sha or None, size).
6. ledger.settle_all() settles the base; index.update_state(cursor=...,
   last_sync=...).
"""
