"""The page's stylesheet and script, inlined (the page fetches nothing from anywhere else), and
the Content-Security-Policy that lets only this script run.

The script refreshes the page in place: every `REFRESH_SECONDS` (while the tab is visible) it asks
`api/view?html=1` (relative, so the page works behind `kubectl port-forward` or a proxy path) and
swaps in the sections the server rendered again. It builds no HTML itself: all escaping happens
once, on the server.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Final

__all__ = ["CSP", "REFRESH_SECONDS", "SCRIPT", "STYLE"]

REFRESH_SECONDS: Final = 5

STYLE: Final = """
:root{--bg:#f3f5f8;--panel:#fff;--ink:#1b2330;--muted:#667085;--line:#dde2ea;--free:#e8ecf1;
--free-line:#cbd2dc;--bad:#d92d20;--warn:#dc6803;--ok:#12b76a;--accent:#2f5bd3;--res:#7a5af8}
*{box-sizing:border-box}
body{margin:0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);background:var(--bg)}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
header.top{display:flex;align-items:center;gap:18px;padding:9px 20px;background:#121923;color:#fff}
.brand{font-weight:700;font-size:15px}.brand span{font-weight:400;color:#9aa6b8;margin-left:6px}
.crumbs{color:#9aa6b8}.crumbs a{color:#dbe4f3}
.live{margin-left:auto;font-size:12px;color:#aeb8c8;white-space:nowrap}
.live::before{content:"";display:inline-block;width:8px;height:8px;border-radius:50%;background:#667085;
margin-right:6px;vertical-align:1px}
.live.ok::before{background:var(--ok)}.live.bad::before{background:var(--bad)}
main{padding:12px 20px 24px;display:flex;flex-direction:column;gap:12px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px}
.card{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:7px 12px}
.card .k{color:var(--muted);font-size:10.5px;text-transform:uppercase;letter-spacing:.6px}
.card .v{font-size:19px;font-weight:650;white-space:nowrap}.card .v small{font-size:12px;
color:var(--muted);font-weight:500}
.card .s{color:var(--muted);font-size:11.5px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.card.alert .v{color:var(--bad)}
.panel{background:var(--panel);border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:0}
.panel>h2{margin:0 0 8px;font-size:13.5px;display:flex;gap:10px;align-items:baseline}
.panel>h2 small{font-weight:400;color:var(--muted);font-size:12px}
.problems{border-color:#fda29b;background:#fef3f2;color:#912018}.problems ul{margin:4px 0 0;
padding-left:18px}
.legend{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;margin:0 0 10px;font-size:12px}
.legend .sw{display:inline-flex;align-items:center;gap:5px;white-space:nowrap}
.legend .sep{width:1px;height:16px;background:var(--line)}
.legend .gpu{display:inline-flex}
.blocks{display:flex;flex-wrap:wrap;gap:12px}
.block{flex:1 1 300px;min-width:0}
.block>h3{margin:0 0 6px;font-size:12.5px;font-weight:650}.block>h3 span{color:var(--muted);font-weight:500}
.racks{display:flex;flex-wrap:wrap;gap:10px}
.rack{flex:1 1 300px;border:1px solid var(--line);border-radius:7px;padding:7px 8px;background:#fafbfc;
min-width:0}
.rack>h4{margin:0 0 6px;font-size:12.5px;display:flex;justify-content:space-between;gap:8px}
.rack>h4 span{color:var(--muted);font-weight:500}
.nodes{display:grid;grid-template-columns:repeat(auto-fill,minmax(148px,1fr));gap:6px}
.node{background:#fff;border:1px solid var(--line);border-radius:5px;padding:4px 6px 5px;min-width:0}
.node-head{display:flex;justify-content:space-between;gap:6px;font-size:11px;margin-bottom:3px}
.node-name{font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.node-use{color:var(--muted);white-space:nowrap}
.node.down{border-color:var(--bad);background:#fff6f5}
.node.cooling{border-color:var(--warn);background:#fffaf0}
.node.cordoned{background:repeating-linear-gradient(135deg,#fff 0 6px,#f4f5f7 6px 12px)}
.node.reserved{box-shadow:inset 0 0 0 2px var(--res)}
.node.held{outline:1.5px dashed var(--res);outline-offset:-1.5px}
.held-sample{display:inline-block;width:16px;height:12px;border-radius:3px;outline:1.5px dashed var(--res);
outline-offset:-1.5px;background:#fff}
.flags{display:flex;flex-wrap:wrap;gap:3px;margin-top:4px}
.flag{font-size:10px;border-radius:3px;padding:0 4px;background:#eef1f5;color:#344054;white-space:nowrap;
max-width:100%;overflow:hidden;text-overflow:ellipsis}
.flag.bad{background:#fee4e2;color:#912018}.flag.warn{background:#fef0c7;color:#93370d}
.flag.res{background:#ebe9fe;color:#4a1fb8}
.gpus{display:grid;grid-template-columns:repeat(8,15px);gap:3px}
.gpu{position:relative;width:15px;height:15px;border-radius:3px;background:var(--free);
border:1px solid var(--free-line);
overflow:hidden;display:flex;flex-direction:column-reverse}
.gpu>i{display:block;flex:none;width:100%}
.gpu.shared>i+i{border-top:1px solid #fff}
.gpu.mig>i+i{border-left:1px solid #fff}
.gpu.mig{flex-direction:row}.gpu.mig>i{flex:1 1 0;height:100%;width:auto}
.o{background:hsl(var(--h) 62% var(--l,54%))}
.gpu.whole{border-color:hsl(var(--h) 55% 36%);background:hsl(var(--h) 62% var(--l,54%))}
.gpu.shared,.gpu.mig{border-color:#98a2b3}
.gpu>i.foreign{background:repeating-linear-gradient(45deg,#98a2b3 0 1.5px,#e4e7ec 1.5px 3px)}
.gpu.guess::after{content:"";position:absolute;inset:0;
background:radial-gradient(circle,rgba(255,255,255,.85) 1px,transparent 1.3px) 0 0/4px 4px}
.gpu.binding{outline:2px dashed #1b2330;outline-offset:-2px}
.gpu.bad{border:2px solid var(--bad)}
.gpu.bad::before{content:"";position:absolute;inset:0;z-index:1;
background:linear-gradient(45deg,transparent 42%,var(--bad) 42% 58%,transparent 58%),
linear-gradient(-45deg,transparent 42%,var(--bad) 42% 58%,transparent 58%)}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(124px,1fr));gap:6px}
.tiles.small{grid-template-columns:repeat(auto-fill,minmax(84px,1fr));gap:4px;margin-top:4px}
.tile{display:block;color:inherit;border:1px solid var(--line);border-radius:6px;padding:4px 7px;
background:#fff}
.tile:hover{border-color:var(--accent);text-decoration:none}
.tile.zoomed{border-color:var(--accent);box-shadow:inset 0 0 0 1px var(--accent)}
.tile-head{display:flex;justify-content:space-between;gap:4px;font-size:11.5px}
.tile-name{font-weight:600;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tile-use{color:var(--muted);white-space:nowrap}
.tile-nums{font-size:10.5px;color:var(--muted);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.tile-nums b{color:var(--bad);font-weight:600}
.tiles.small .tile-nums,.tiles.small .tile-use{display:none}
.bar{display:flex;height:8px;border-radius:4px;background:var(--free);overflow:hidden;margin:4px 0}
.bar>i{display:block;height:100%}
.columns{display:grid;grid-template-columns:minmax(0,1.55fr) minmax(0,1fr);gap:12px;align-items:start}
.stack{display:flex;flex-direction:column;gap:12px;min-width:0}
table{border-collapse:collapse;width:100%;font-size:12px}
th{text-align:left;color:var(--muted);font-weight:600;font-size:11px;border-bottom:1px solid var(--line);
padding:3px 6px}
td{border-bottom:1px solid #eef0f4;padding:3px 6px;vertical-align:top}
td.num,th.num{text-align:right;white-space:nowrap}
td.why{max-width:0;width:100%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:#475467}
td.nowrap{white-space:nowrap}
td.why b{font-weight:600;color:var(--ink)}
.reason{width:100%;color:#475467}
.clamp{display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden}
.said{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:var(--muted);font-size:11.5px}
.dot{display:inline-block;width:10px;height:10px;border-radius:2px;vertical-align:-1px;margin-right:5px}
.state{font-size:10.5px;border-radius:9px;padding:0 7px;white-space:nowrap;background:#eef1f5;color:#344054}
.state.active,.state.scheduled{background:#d1fadf;color:#05603a}
.state.backoff,.state.preempting{background:#fef0c7;color:#93370d}
.state.unschedulable,.state.error{background:#fee4e2;color:#912018}
.state.blocked{background:#e0eaff;color:#2d3282}
.quota{position:relative;height:10px;min-width:90px;border-radius:5px;background:var(--free);
overflow:hidden}
.quota>i{position:absolute;left:0;top:0;bottom:0}
.quota>b{position:absolute;top:-1px;bottom:-1px;width:2px;background:#1b2330}
.more{color:var(--muted);padding:6px 6px 0;font-size:12px}
.empty{color:var(--muted);padding:6px}
.note{color:var(--muted);font-size:12px;margin:0 0 8px}
.standby{max-width:640px;margin:60px auto;text-align:center}
.standby h1{font-size:20px}
@media (max-width:1000px){.columns{grid-template-columns:1fr}}
"""

SCRIPT: Final = """
(function () {
  "use strict";
  var period = __PERIOD_MS__;
  var body = document.body;
  var live = document.getElementById("live");
  var shown = {};
  var refreshes = 0;
  function address() {
    var query = new URLSearchParams(location.search);
    query.set("html", "1");
    return "api/view?" + query.toString();
  }
  function status(ok, words) {
    live.className = "live " + (ok ? "ok" : "bad");
    live.textContent = words;
  }
  function apply(data) {
    if (String(data.leading) !== body.dataset.leading) {
      location.reload();
      return;
    }
    if (!data.leading) {
      live.className = "live";
      live.textContent = "standby";
      return;
    }
    var parts = data.html || {};
    Object.keys(parts).forEach(function (id) {
      var section = document.getElementById(id);
      if (section !== null && shown[id] !== parts[id]) {
        section.innerHTML = parts[id];
        shown[id] = parts[id];
      }
    });
    refreshes += 1;
    body.dataset.refreshes = String(refreshes);
    status(true, "live \\u00b7 updated " + (data.updated || ""));
  }
  function refresh() {
    if (document.hidden) {
      setTimeout(refresh, period);
      return;
    }
    fetch(address(), {cache: "no-store", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(apply)
      .catch(function (error) {
        status(false, "disconnected, retrying (" + error.message + ")");
      })
      .then(function () {
        setTimeout(refresh, period);
      });
  }
  setTimeout(refresh, period);
})();
""".replace("__PERIOD_MS__", str(REFRESH_SECONDS * 1000))

_SCRIPT_HASH: Final = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()

#: Only the page's own script runs (by its hash), styles only inline, requests only to this
#: server, and the page is never framed: markup that slipped past escaping could run nothing.
CSP: Final = (
    "default-src 'none'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; "
    "style-src 'unsafe-inline'; "
    "connect-src 'self'; "
    "img-src 'self'; "
    "base-uri 'none'; "
    "form-action 'none'; "
    "frame-ancestors 'none'"
)
