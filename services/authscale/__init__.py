"""Session vs token authentication: the product (core, login, session, tokens) and the lab.

A regular package, not a namespace one: an installed ``authscale`` never merges with a checkout's
``services/authscale`` that happens to be on the path.
"""
