"""The only code that talks to the Kubernetes API: client, informer, bindings, events."""
