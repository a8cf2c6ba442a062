#!/var/www/yourapplication/venv/bin/python
import os
import sys

# Import yourapplication from this file's directory, whatever the working directory is.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fcgikit import WSGIServer  # was: from flup.server.fcgi import WSGIServer
from yourapplication import app

if __name__ == "__main__":
    WSGIServer(app).run()
