"""The ``atlas`` command: the platform's local runner and operator CLI."""
