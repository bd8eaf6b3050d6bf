"""The plugin framework: extension points as Protocols, `Status`, `CycleState`, the registry,
profiles, and the runtime that runs a profile's plugins over a snapshot.

Pure: imports topology and api, no I/O, no clock. Filter and Score are vectorised: one call
answers for every node of the snapshot.
"""
