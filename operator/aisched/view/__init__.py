"""The read-only cluster view the operator serves on its HTTP port (`/` and `/api/view`).

`build` reads the leading scheduling runtime's books (cache, queue, quota ledger, reservations,
decision log) into the frozen values of `model`; `page` renders them as one HTML page with its
CSS and script inline (nothing fetched from elsewhere), every cluster-given name escaped;
`provider` builds the view of whichever runtime leads now, at most once per second. Nothing here
writes to the runtime or to the API server. `browser` drives a headless Chromium for the tests
and `aisched view-screenshot`.
"""

from aisched.view.build import build_view
from aisched.view.model import ClusterView
from aisched.view.provider import RuntimeViews, ViewSource

__all__ = ["ClusterView", "RuntimeViews", "ViewSource", "build_view"]
