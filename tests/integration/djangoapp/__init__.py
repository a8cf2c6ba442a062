"""A small Django project for the integration suite: the admin, one model, nothing else.

Served by ``fcgikit serve djangoapp.wsgi:application`` under ``/yourapplication``, without
``FORCE_SCRIPT_NAME``: Django must take the prefix from SCRIPT_NAME. The database is the
SQLite file named by ``FCGIKIT_TEST_DJANGO_DB``.
"""
