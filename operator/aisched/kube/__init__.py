"""The only code that talks to the Kubernetes API: client, informer, bindings, events; and, as in
client-go, what controllers build on: retry pacing and the keyed work queue."""
