"""A request: one job's every option, with its default and its check, and nothing else; JSON in and out.

The CLI builds a request from its flags, the Slicer bridge and the web page from their parameter node, and the
child process reads it back from a file (`python -m SemanticSynthLib run REQUEST.json`), so one option can be
followed from a widget to the engine. Each field carries, beside its type and default:

- `check`: the range check of SemanticSynthLib/checks.py (the one place it is written);
- `role`: what the value is to the job: `data` (the main input), `input` (another file read), `model`
  (a package folder or bundled name), `output` (a file written), `folder` (a folder written), `checkpoint`;
  engine/commands/preflight.py reads the roles to check paths before any work;
- `flag` / `positional` / `metavar` / `cli`: how the command line spells it.

A bad value is one line naming the option (`argument --steps: must be at least 1, not 0`), never pydantic's
multi-line report. Torch-free (pydantic only), and written for Python 3.9 (Slicer 5.8): `Optional`, no `X | None`.
"""
import json
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ...errors import SynthError

REQUIRED: Any = ...
ROLES = ("data", "input", "model", "output", "folder", "checkpoint")


def option(default: Any = REQUIRED, help: str = "", *, check: Optional[Callable] = None, role: Optional[str] = None,
           flag: Optional[str] = None, positional: bool = False, metavar: Optional[str] = None, cli: bool = True,
           recorded: Optional[bool] = None):
    """A request field. `recorded`: whether provenance keeps it (default: everything but paths and --overwrite)."""
    assert role is None or role in ROLES, role
    extra = {"check": check, "role": role, "flag": flag, "positional": positional, "metavar": metavar, "cli": cli,
             "recorded": (role is None) if recorded is None else recorded}
    return Field(default, description=help, json_schema_extra={"semanticsynth": extra})


def spec(field_info) -> dict:
    """The option() extras of a pydantic field."""
    return (field_info.json_schema_extra or {}).get("semanticsynth", {})


def flag_of(name: str, field_info) -> str:
    s = spec(field_info)
    return name if s.get("positional") else (s.get("flag") or "--" + name.replace("_", "-"))


class Request(BaseModel):
    """Base of every request; subclasses declare `command` and their fields with option()."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)
    command: ClassVar[str] = ""

    @field_validator("*", mode="before")
    @classmethod
    def _checked(cls, value, info):
        check = spec(cls.model_fields[info.field_name]).get("check")
        if check is None or value is None:
            return value
        return check(value)

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, values: Dict[str, Any], source: str = "option") -> "Request":
        """Validate `values` (flags as typed, or a file's JSON); SynthError with one line on the first bad one."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SynthError(cls._one_line(exc, source)) from None
        except TypeError as exc:  # a check handed a value of a type it cannot read
            raise SynthError(f"{cls.command}: {exc}") from None

    @classmethod
    def _one_line(cls, exc: ValidationError, source: str) -> str:
        error = exc.errors(include_url=False)[0]
        name = str(error["loc"][0]) if error["loc"] else ""
        if error["type"] == "extra_forbidden":
            known = ", ".join(cls.model_fields)
            return f"unknown {source} {name!r} for {cls.command}; the options are: {known}"
        if error["type"] == "missing":
            where = flag_of(name, cls.model_fields[name]) if name in cls.model_fields else name
            return f"{cls.command}: {where} is required"
        reason = error.get("ctx", {}).get("error")
        message = str(reason) if isinstance(reason, Exception) else error["msg"]
        if name in cls.model_fields:
            where = f"argument {flag_of(name, cls.model_fields[name])}" if source == "option" else f"request field {name}"
        else:
            where = f"request field {name}"
        return f"{where}: {message}"

    # -- JSON ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"command": self.command, **self.model_dump(mode="json")}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def write(self, path) -> Path:
        """Write the request file (temp file, read back, renamed)."""
        from ..volume.atomic import write_text_checked

        return write_text_checked(Path(path), self.to_json() + "\n", lambda text: type(self).from_json(text) == self)

    @classmethod
    def from_json(cls, text: str) -> "Request":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SynthError(f"the request is not valid JSON ({exc.msg} at line {exc.lineno}); write it with "
                             "Request.write or fix the file") from None
        if not isinstance(data, dict):
            raise SynthError("the request must be a JSON object with a \"command\" and the command's options")
        command = data.pop("command", cls.command)
        if command != cls.command:
            raise SynthError(f"the request is for {command!r}, not {cls.command!r}")
        return cls.build(data, source="request field")

    # -- what the result records -----------------------------------------------------------------------------
    def parameters(self) -> dict:
        """The fields that shape the result (no paths, no --overwrite): what provenance records."""
        values = self.model_dump(mode="json")
        return {name: values[name] for name, info in type(self).model_fields.items() if spec(info).get("recorded")}

    def paths(self, role: str) -> list:
        """The values of the fields with this role that are set, in field order."""
        return [getattr(self, name) for name, info in type(self).model_fields.items()
                if spec(info).get("role") == role and getattr(self, name)]
