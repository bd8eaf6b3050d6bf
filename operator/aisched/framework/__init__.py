"""The plugin framework: extension points as Protocols, `Status`, `CycleState`, the registry,
the profile, the `Handle` plugins reach shared state through, the cluster events they register
(queueing hints), preemption's `Nomination`, and the runtime that runs a profile's plugins.

Pure: imports api, topology, cache and quota; no I/O, no clock. Filter and Score are vectorised:
one call answers for every node of the snapshot.
"""
