#!/home/you/venv/bin/python
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fcgikit import WSGIServer
from fcgikit.middleware import MountFix
from yourapplication import app

# The rewrite in .htaccess sends SCRIPT_NAME "/yourapplication.fcgi"; MountFix puts the app
# back at the document root ("" here; the directory, like "/blog", if the .htaccess is there).
app = MountFix(app, "")

if __name__ == "__main__":
    WSGIServer(app).run()
