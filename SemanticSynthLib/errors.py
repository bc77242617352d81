"""User-facing errors: one line that names the problem and the fix."""


class SynthError(Exception):
    """An error caused by input or setup; the CLI prints only its message and exits with 2."""
