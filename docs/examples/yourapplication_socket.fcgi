#!/var/www/yourapplication/venv/bin/python
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fcgikit import WSGIServer
from yourapplication import app

if __name__ == "__main__":
    # umask 0o007: the socket is created rw-rw---- so the web server's group can connect.
    WSGIServer(app, bindAddress="/run/yourapplication/fcgi.sock", umask=0o007).run()
