"""What the import core raises or yields when input is bad."""


class ImportFileError(ValueError):
    """The whole file is unusable; str(error) is the Chinese message for the admin."""


class BadCell:
    """Stands in for a cell the reader could not give a value for.

    A formula without a cached result or an Excel error value (#N/A) reads as
    an empty string in calamine; this marker keeps it from passing as "blank".
    """

    __slots__ = ("message",)

    def __init__(self, message):
        self.message = message

    def __repr__(self):
        return f"BadCell({self.message!r})"

    def __eq__(self, other):
        return isinstance(other, BadCell) and other.message == self.message

    def __hash__(self):
        return hash(self.message)
