"""Imports a module that does not exist, whose name is a prefix of this
one's, for the command-line tests: the failure is the import's, shown."""

import absent  # noqa: F401
