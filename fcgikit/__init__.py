"""fcgikit: put any WSGI app behind a real web server over FastCGI."""

__version__ = "0.1.0"
