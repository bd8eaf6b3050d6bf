"""For local development with plain Kopf: `kopf run -m aisched.kopf_main --all-namespaces`.

Registers aisched's handlers on Kopf's default registry (the one `kopf run` uses); the startup hook
then builds the scheduler from the environment ($KUBECONFIG, else in-cluster; AISCHED_* settings).
`aisched run` is the same operator with an explicit registry and more options.
"""

import kopf

from aisched.controllers.kopf_handlers import register

register(kopf.get_default_registry())
