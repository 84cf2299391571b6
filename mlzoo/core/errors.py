"""The one exception type for mistakes a user can fix (bad config, missing files, bad checkpoint).

``mlzoo.train`` turns a ZooError into a single line on stderr and a non-zero exit, without a
traceback: the message itself must say what went wrong and how to fix it.
"""


class ZooError(Exception):
    """A user-facing error; its message is shown as is."""
