"""Pure topology maths: GPUs, how they are wired, what moving data between them costs, and the
per-cycle columnar `Snapshot` of the cluster.

No I/O, no kopf, no Kubernetes client, no clock. Imports api and numpy only.
"""
