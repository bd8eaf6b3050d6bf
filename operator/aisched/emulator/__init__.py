"""An embedded Kubernetes API server for tests and the local demo (aiohttp).

It serves what aisched's code and real clients (kubectl, kubernetes-asyncio, Kopf) use: discovery,
CRUD with resourceVersions, merge/JSON/strategic-merge patches, status and binding subresources,
CRDs with schema validation, label and field selectors, watches that resume from a revision, and
Tables for `kubectl get`. A cluster file adds simulated GPU nodes and a simulated kubelet.
"""
