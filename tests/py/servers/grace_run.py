"""An HttpServer served by ``px.run(drain_grace=ARGV1)`` itself (no serve
command line), its health endpoint at /healthz."""

import sys

from ops_app import App

import pyparallel as px


class Checked(App):
    limits = {"health_path": "/healthz"}


server = px.server("127.0.0.1", 0)
px.register(transport=server, protocol=Checked)
print(f"grace_run: listening on 127.0.0.1:{server.port}", flush=True)
px.run(workers=1, drain_grace=float(sys.argv[1]))
