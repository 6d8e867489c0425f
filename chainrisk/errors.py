"""The one exception root of the chainrisk package (the CLI and its commands).

Every error the package raises on purpose derives from `ChainriskError`; anything else is a bug and keeps
its traceback. The CLI prints `error: <message>` on one line and exits with the error's `exit_code`
(2: the user can fix the input; 1: an operation failed)::

    ChainriskError                   root (exit 2)
     ├─ SettingsError                chainrisk/settings.py: env CHAINRISK_* or chainrisk.toml
     ├─ OptionError                  chainrisk/inputs.py: a command-line option, argument or input file
     ├─ DatabaseUrlError             chainrisk/db.py: CHAINRISK_DATABASE_URL malformed or unreachable
     ├─ EmbeddedServerError          chainrisk/embedded.py: the embedded server cannot start (exit 1)
     │   └─ EmbeddedHomeError        CHAINRISK_HOME is empty or relative
     ├─ ReaderRoleError              chainrisk/reader.py: grant-reader refused (name, option, role with more)
     └─ ServiceError                 chainrisk/serve/service.py: the service cannot go on (exit 1)
"""

from __future__ import annotations


class ChainriskError(Exception):
    """Root of every error the chainrisk package raises on purpose."""

    exit_code = 2
