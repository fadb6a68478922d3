"""The commands: argument parsing, user-facing messages and exit statuses, one module per command.

Library modules (``tracking``, ``eval``, ``train``, ...) take values and raise our own error types; the
modules here turn a command line into those values, call the library and print its results or one
``error: ...`` line (exit status 2). The library never imports this package; ``python -m siamrn_jax.X``
runs a thin ``__main__.py`` that calls the command here, and the installed ``siamrn-*`` commands are
``siamrn_jax.cli.commands``.
"""
