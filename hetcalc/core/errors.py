"""One mechanism for bad input: the core raises ``InvalidInput``, the CLI prints it on one line, exit 2."""

from __future__ import annotations

import os


class InvalidInput(ValueError):
    """A value the user gave is not valid; the message says what would be.

    ``parameter`` is the name of the function's own parameter (``P``, ``D_in``); the CLI shows
    the flag that sets it (``--P``, ``--D-in``).
    """

    def __init__(self, parameter: str, reason: str):
        self.parameter, self.reason = parameter, reason
        super().__init__(f"{parameter}: {reason}")


def divisors(n: int, most: int = 12) -> list[int]:
    """The smallest ``most`` positive divisors of ``n``, ascending, then ``n`` itself.

    Trial division stops at 10⁵, so a huge ``n`` never stalls an error message.
    """
    found = []
    for d in range(1, min(n, 10**5) + 1):
        if n % d == 0:
            found.append(d)
            if len(found) == most:
                break
    return found if found[-1] == n else found + [n]


def listing(values: list[int], most: int = 12) -> str:
    shown = ", ".join(map(str, values[:most]))
    return shown + (", …" if len(values) > most else "")


def positive_int(option: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or InvalidInput naming the parameter ``option``."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise InvalidInput(option, f"must be a whole number >= {minimum}, got {value!r}")
    if value < minimum:
        raise InvalidInput(option, f"must be a whole number >= {minimum}, got {value}")
    return value


def whole_numbers(option: str, text: str, example: str) -> list[int]:
    """'2,4,8' → [2, 4, 8]: comma-separated whole numbers >= 1, or InvalidInput naming ``option``."""
    values = []
    for part in str(text).split(","):
        if not part.strip().isdigit():
            raise InvalidInput(
                option, f"expected comma-separated whole numbers, e.g. {example}; got {part.strip()!r}"
            )
        values.append(positive_int(option, int(part)))
    return values


def existing_folder(option: str, path) -> str:
    """``path`` unchanged if the folder it would be written into exists, else InvalidInput naming ``option``."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InvalidInput(option, f"folder {folder} does not exist")
    return path


def dividing(option: str, value, channels: int, what: str) -> int:
    """``value`` as a positive divisor of ``channels``, or InvalidInput listing the valid values."""
    value = positive_int(option, value)
    if channels % value:
        raise InvalidInput(
            option,
            f"{value} does not divide {what} ({channels}); valid values: {listing(divisors(channels))}",
        )
    return value
