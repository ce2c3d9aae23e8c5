"""Command-registration limits that Discord documents but its OpenAPI schema does not encode.

The schema types an option's ``min_value`` as a bare integer/number and leaves the
lengths of choices and the 8,000-character total to prose, so a payload can pass
the schema and still be refused by Discord.  Discord refuses the *whole* bulk
``PUT`` when one command breaks a rule, which is why the fake checks every
command before storing any of them.
"""

from __future__ import annotations

from typing import Any, Final

INT53_MAX: Final = 2**53 - 1  # INTEGER options: -(2^53 - 1) .. 2^53 - 1
NUMBER_MAX: Final = 2**53  # NUMBER options: -2^53 .. 2^53
MAX_OPTIONS: Final = 25
MAX_CHOICES: Final = 25
MAX_NAME: Final = 32
MAX_DESCRIPTION: Final = 100
MAX_CHOICE_NAME: Final = 100
MAX_CHOICE_VALUE: Final = 100
MAX_LENGTH_BOUND: Final = 6000
MAX_COMMAND_TOTAL: Final = 8000

OPTION_SUB_COMMAND: Final = 1
OPTION_SUB_COMMAND_GROUP: Final = 2
OPTION_STRING: Final = 3
OPTION_INTEGER: Final = 4
OPTION_NUMBER: Final = 10
COMMAND_CHAT_INPUT: Final = 1


class LimitError(Exception):
    """One broken limit: the dotted path of the field, Discord's error code, and why."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.code = code
        self.message = message


def _longest(obj: dict[str, Any], key: str) -> int:
    """Length that counts towards the total: the longest of the field and its localizations."""
    texts = [str(obj.get(key) or "")]
    texts += [str(v) for v in (obj.get(f"{key}_localizations") or {}).values()]
    return max(len(t) for t in texts)


def _check_length(obj: dict[str, Any], key: str, low: int, high: int, where: str) -> None:
    for text in [obj.get(key), *(obj.get(f"{key}_localizations") or {}).values()]:
        if text is None:
            continue
        if not low <= len(str(text)) <= high:
            raise LimitError(
                f"{where}.{key}",
                "BASE_TYPE_BAD_LENGTH",
                f"Must be between {low} and {high} in length.",
            )


def _check_number(value: Any, bound: int, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LimitError(field, "NUMBER_TYPE_COERCE", f"Value {value!r} is not a number.")
    if not -bound <= value <= bound:
        raise LimitError(
            field,
            "NUMBER_TYPE_MAX" if value > 0 else "NUMBER_TYPE_MIN",
            f"Value {value!r} is outside {-bound}..{bound}.",
        )


def _check_option(opt: dict[str, Any], where: str) -> int:
    """Check one option (recursively); return the characters it adds to the command's total."""
    _check_length(opt, "name", 1, MAX_NAME, where)
    _check_length(opt, "description", 1, MAX_DESCRIPTION, where)
    total = _longest(opt, "name") + _longest(opt, "description")
    otype = int(opt.get("type", 0))
    if otype in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP):
        return total + _check_options(opt.get("options") or [], f"{where}.options")
    bound = INT53_MAX if otype == OPTION_INTEGER else NUMBER_MAX
    if otype in (OPTION_INTEGER, OPTION_NUMBER):
        for key in ("min_value", "max_value"):
            if opt.get(key) is not None:
                _check_number(opt[key], bound, f"{where}.{key}")
        low, high = opt.get("min_value"), opt.get("max_value")
        if low is not None and high is not None and low > high:
            raise LimitError(
                f"{where}.min_value",
                "NUMBER_TYPE_MAX",
                f"min_value {low} is greater than max_value {high}.",
            )
    if otype == OPTION_STRING:
        low, high = opt.get("min_length"), opt.get("max_length")
        if low is not None and not 0 <= int(low) <= MAX_LENGTH_BOUND:
            raise LimitError(f"{where}.min_length", "NUMBER_TYPE_MAX", "Must be 0..6000.")
        if high is not None and not 1 <= int(high) <= MAX_LENGTH_BOUND:
            raise LimitError(f"{where}.max_length", "NUMBER_TYPE_MAX", "Must be 1..6000.")
        if low is not None and high is not None and int(low) > int(high):
            raise LimitError(
                f"{where}.min_length",
                "NUMBER_TYPE_MAX",
                f"min_length {low} is greater than max_length {high}.",
            )
    choices = opt.get("choices") or []
    if len(choices) > MAX_CHOICES:
        raise LimitError(f"{where}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer.")
    for i, choice in enumerate(choices):
        here = f"{where}.choices.{i}"
        _check_length(choice, "name", 1, MAX_CHOICE_NAME, here)
        value = choice.get("value")
        if otype == OPTION_STRING:
            if not isinstance(value, str) or not 1 <= len(value) <= MAX_CHOICE_VALUE:
                raise LimitError(
                    f"{here}.value", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
                )
        else:
            _check_number(value, bound, f"{here}.value")
        total += _longest(choice, "name") + len(str(value))
    return total


def _check_options(options: list[Any], where: str) -> int:
    if len(options) > MAX_OPTIONS:
        raise LimitError(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    return sum(_check_option(opt, f"{where}.{i}") for i, opt in enumerate(options))


def check_command(command: dict[str, Any], where: str) -> None:
    """Raise :class:`LimitError` for the first documented limit ``command`` breaks."""
    if int(command.get("type", COMMAND_CHAT_INPUT)) != COMMAND_CHAT_INPUT:
        _check_length(command, "name", 1, MAX_NAME, where)
        return
    _check_length(command, "name", 1, MAX_NAME, where)
    _check_length(command, "description", 1, MAX_DESCRIPTION, where)
    total = _longest(command, "name") + _longest(command, "description")
    total += _check_options(command.get("options") or [], f"{where}.options")
    if total > MAX_COMMAND_TOTAL:
        raise LimitError(
            where,
            "APPLICATION_COMMAND_TOO_LARGE",
            f"Command exceeds maximum size ({total} > {MAX_COMMAND_TOTAL} characters).",
        )
