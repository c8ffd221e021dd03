# Sparkbook notebook image: server-wide Jupyter settings.
# ruff: noqa: F821  (`c` is injected by Jupyter when it loads this file)

# The Spark UI of a SparkSession is a Service in the cluster ("<session>-ui.<namespace>.svc:4040");
# jupyter-server-proxy may reach in-cluster Services and nothing else.
def _in_cluster_service(handler, host):
    name = host.split(":", 1)[0]
    return name.endswith(".svc") or name.endswith(".svc.cluster.local")


c.ServerProxy.host_allowlist = _in_cluster_service

# Token auth and XSRF checks stay on (the defaults); the token comes from JUPYTER_TOKEN.
c.ServerApp.disable_check_xsrf = False
c.ServerApp.allow_origin = ""

# No announcements fetched from the internet (overrides.json also turns the news prompt off).
c.LabApp.news_url = None

# The Spark UI's root redirect names the notebook server's host without the proxy path: keep it in.
from sparkbook.notebook.uiproxy import keep_redirects_inside  # noqa: E402

c.ServerProxy.non_service_rewrite_response = keep_redirects_inside

# Spark UI links that name the application, not the driver: the live UI while it runs, the History
# Server's page once it is gone (sparkbook/notebook/links.py; used when a History Server is known).
c.ServerApp.jpserver_extensions.update({"sparkbook.notebook.links": True})
