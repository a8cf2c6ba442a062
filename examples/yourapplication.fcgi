#!/usr/bin/env python3
# The guide's yourapplication.fcgi with one line changed: the import.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fcgikit import WSGIServer  # was: from flup.server.fcgi import WSGIServer
from yourapplication import app

if __name__ == "__main__":
    WSGIServer(app).run()
